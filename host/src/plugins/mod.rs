//! The WebAssembly plugin platform: one engine, one `InstancePre` per plugin, a fresh
//! sandboxed instance per call, and the registry the admin manages.
//!
//! - `bindings` — the only `bindgen!` (the four worlds of `magpie:plugin@0.1.0`).
//! - `engine` — the engine, the epoch ticker, the on-disk cache, instantiation.
//! - `sandbox` — per-call store data: WASI with nothing granted, limits, grants.
//! - `host/` — the `host` interface, one file per area; capabilities checked first.
//! - `capabilities` — capability strings and the outbound-HTTP allowlist rules.
//! - `manifest` — checking what a plugin says about itself.
//! - `registry` — loaded plugins, calls, failure counting, hot swap, catalogue.
//! - `lookup` — finding the contact a plugin names (email, device, id).

pub mod bindings;
pub mod capabilities;
pub mod engine;
pub mod host;
pub mod lookup;
pub mod manifest;
pub mod registry;
pub mod sandbox;

use std::time::Duration;

pub use registry::{IngestOutcome, Origin, Plugin, Plugins};

/// The directory of the hostile test plugins (built by `build.rs`, never embedded).
pub const TEST_PLUGINS_DIR: &str = env!("MAGPIE_TEST_PLUGINS_DIR");

/// The built-in plugins, compiled from `plugins/` by `build.rs`.
pub const BUILT_IN: &[(&str, &[u8])] = &[
    (
        "core-events",
        include_bytes!(concat!(env!("OUT_DIR"), "/core_events.wasm")),
    ),
    (
        "video-events",
        include_bytes!(concat!(env!("OUT_DIR"), "/video_events.wasm")),
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    EventTypes,
    BatchAction,
    Integration,
    TrackingForwarder,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::EventTypes => "event-types",
            Kind::BatchAction => "batch-action",
            Kind::Integration => "integration",
            Kind::TrackingForwarder => "tracking-forwarder",
        }
    }
}

/// The sandbox's limits (`[plugins]` in magpie.toml).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock deadline of one call.
    pub call_timeout: Duration,
    /// Deadline of `describe` + `event-types` when loading.
    pub load_timeout: Duration,
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Failures in a row (traps, timeouts, memory exhaustion, malformed answers) after
    /// which the plugin is disabled.
    pub max_consecutive_failures: u32,
    /// Largest outbound HTTP response body.
    pub max_http_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_millis(1000),
            load_timeout: Duration::from_millis(5000),
            memory_bytes: 64 << 20,
            max_consecutive_failures: 5,
            max_http_response_bytes: 4 << 20,
        }
    }
}

impl Limits {
    pub fn from_config(c: &crate::config::PluginsConfig) -> Limits {
        Limits {
            call_timeout: Duration::from_millis(c.call_timeout_ms.max(1)),
            load_timeout: Duration::from_millis(c.load_timeout_ms.max(1)),
            memory_bytes: (c.memory_limit_mb.max(1) as usize) << 20,
            max_consecutive_failures: c.max_consecutive_failures.max(1),
            max_http_response_bytes: c.max_http_response_bytes,
        }
    }
}

/// Why a plugin call failed (as opposed to the plugin answering an error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the plugin ran past its deadline and was stopped")]
    Timeout,
    #[error("the plugin exhausted its memory and was stopped")]
    MemoryExhausted,
    #[error("the plugin trapped: {0}")]
    Trap(String),
    #[error("the plugin returned malformed data: {0}")]
    Malformed(String),
    #[error("no plugin instance is free right now")]
    Busy,
    #[error("{0}")]
    Unsupported(String),
    #[error("the plugin `{0}` is not loaded")]
    NotLoaded(String),
    #[error("the plugin `{0}` is disabled")]
    Disabled(String),
}

impl CallError {
    /// Failures count towards disabling the plugin; refusals before running do not.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            CallError::Timeout
                | CallError::MemoryExhausted
                | CallError::Trap(_)
                | CallError::Malformed(_)
        )
    }
}
