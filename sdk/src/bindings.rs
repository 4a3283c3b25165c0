//! The generated bindings: one `generate!` per world. The `host-imports` world owns the
//! shared `types` and `host` interfaces; the kinds' worlds reuse them through `with`, so
//! every kind sees the same Rust types. With `pub_export_macro` each world's custom
//! section describes imports only; a world's exports are described by its export
//! macro, expanded in the plugin's crate, so a plugin exports exactly its own world. Plugin authors never use this module directly.

#![allow(missing_docs, clippy::all)]

/// The imports every kind shares (`types`, `host`): generated once, here.
pub mod imports {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "host-imports",
        additional_derives: [PartialEq],
    });
}

pub mod event_types {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "event-types",
        pub_export_macro: true,
        export_macro_name: "__export_event_types_world",
        default_bindings_module: "magpie_sdk::bindings::event_types",
        additional_derives: [PartialEq],
        with: {
            "magpie:plugin/types@0.1.0": crate::bindings::imports::magpie::plugin::types,
            "magpie:plugin/host@0.1.0": crate::bindings::imports::magpie::plugin::host,
        },
    });
}

pub mod batch_action {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "batch-action",
        pub_export_macro: true,
        export_macro_name: "__export_batch_action_world",
        default_bindings_module: "magpie_sdk::bindings::batch_action",
        additional_derives: [PartialEq],
        with: {
            "magpie:plugin/types@0.1.0": crate::bindings::imports::magpie::plugin::types,
            "magpie:plugin/host@0.1.0": crate::bindings::imports::magpie::plugin::host,
        },
    });
}

pub mod integration {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "integration",
        pub_export_macro: true,
        export_macro_name: "__export_integration_world",
        default_bindings_module: "magpie_sdk::bindings::integration",
        additional_derives: [PartialEq],
        with: {
            "magpie:plugin/types@0.1.0": crate::bindings::imports::magpie::plugin::types,
            "magpie:plugin/host@0.1.0": crate::bindings::imports::magpie::plugin::host,
        },
    });
}

pub mod tracking_forwarder {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "tracking-forwarder",
        pub_export_macro: true,
        export_macro_name: "__export_tracking_forwarder_world",
        default_bindings_module: "magpie_sdk::bindings::tracking_forwarder",
        additional_derives: [PartialEq],
        with: {
            "magpie:plugin/types@0.1.0": crate::bindings::imports::magpie::plugin::types,
            "magpie:plugin/host@0.1.0": crate::bindings::imports::magpie::plugin::host,
        },
    });
}
