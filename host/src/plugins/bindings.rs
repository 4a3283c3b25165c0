//! The one place that runs `bindgen!`: the four worlds of `magpie:plugin@0.1.0`. The
//! `event-types` bindings own the shared `types` and `host` interfaces; the other
//! worlds reuse them through `with`, so the host implements `host` once.
//!
//! Every import is `trappable`: a host function answers `Ok(Err(error))` for what the
//! plugin should see (denied, not found, invalid input) and `Err(trap)` only to stop
//! the call (it broke a limit).

pub mod event_types {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "event-types",
        imports: { default: trappable },
    });
}

pub mod batch_action {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "batch-action",
        imports: { default: trappable },
        with: {
            "magpie:plugin/types": crate::plugins::bindings::event_types::magpie::plugin::types,
            "magpie:plugin/host": crate::plugins::bindings::event_types::magpie::plugin::host,
        },
    });
}

pub mod integration {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "integration",
        imports: { default: trappable },
        with: {
            "magpie:plugin/types": crate::plugins::bindings::event_types::magpie::plugin::types,
            "magpie:plugin/host": crate::plugins::bindings::event_types::magpie::plugin::host,
        },
    });
}

pub mod tracking_forwarder {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "tracking-forwarder",
        imports: { default: trappable },
        with: {
            "magpie:plugin/types": crate::plugins::bindings::event_types::magpie::plugin::types,
            "magpie:plugin/host": crate::plugins::bindings::event_types::magpie::plugin::host,
        },
    });
}

pub use event_types::exports::magpie::plugin::timeline;
pub use event_types::magpie::plugin::host;
pub use event_types::magpie::plugin::types;
