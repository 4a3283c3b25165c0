//! The one `wasmtime::Engine`: component model, epoch interruption driven by a ticker
//! thread, the pooling allocator when the machine allows it (on-demand allocation
//! otherwise), and compiled components cached on disk, keyed by the component's hash
//! and the engine's compatibility hash.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use super::bindings;
use super::sandbox::{CallContext, Sandbox};
use super::{CallError, Kind, Limits};

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Concurrent plugin instances the pooling allocator keeps slots for.
const POOL_INSTANCES: u32 = 256;

pub struct Runtime {
    pub engine: Engine,
    /// Whether the pooling allocator is in use.
    pub pooling: bool,
    linker: Linker<Sandbox>,
    cache_dir: Option<PathBuf>,
    pub limits: Limits,
}

/// A compiled component, ready to instantiate.
pub struct Prepared {
    pub kind: Kind,
    pub pre: Pre,
    pub sha256: String,
    /// Whether the compiled code came from the disk cache.
    pub from_cache: bool,
}

#[derive(Clone)]
pub enum Pre {
    EventTypes(bindings::event_types::EventTypesPre<Sandbox>),
    BatchAction(bindings::batch_action::BatchActionPre<Sandbox>),
    Integration(bindings::integration::IntegrationPre<Sandbox>),
    TrackingForwarder(bindings::tracking_forwarder::TrackingForwarderPre<Sandbox>),
}

fn base_config() -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
    cfg
}

impl Runtime {
    /// The engine, its epoch ticker and the linker with WASI (nothing granted) and the
    /// `host` interface. `cache_dir`: where compiled components are kept (none: memory only).
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> anyhow::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 8)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_core_instances_per_component(32)
            .max_memory_size(limits.memory_bytes);
        let mut pooled = base_config();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let (engine, pooling) = match Engine::new(&pooled) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(error = %e, "the pooling allocator is not available here; plugins use on-demand allocation");
                (
                    Engine::new(&base_config()).map_err(|e| anyhow::anyhow!("{e}"))?,
                    false,
                )
            }
        };
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;
        bindings::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        bindings::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Runtime {
            engine,
            pooling,
            linker,
            cache_dir,
            limits,
        })
    }

    fn engine_key(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Compiles (or loads from the cache) and links a component, and finds its kind.
    /// Nothing runs yet.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, String> {
        if bytes.len() > 64 << 20 {
            return Err("the file is larger than 64 MiB".into());
        }
        if !bytes.starts_with(b"\0asm") {
            return Err("not a WebAssembly file".into());
        }
        if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err("a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 with magpie-sdk".into());
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        let (component, from_cache) = self.component(bytes, &sha256)?;
        let kind = detect_kind(&self.engine, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot link the plugin: {e}"))?;
        let pre = match kind {
            Kind::EventTypes => {
                bindings::event_types::EventTypesPre::new(instance_pre).map(Pre::EventTypes)
            }
            Kind::BatchAction => {
                bindings::batch_action::BatchActionPre::new(instance_pre).map(Pre::BatchAction)
            }
            Kind::Integration => {
                bindings::integration::IntegrationPre::new(instance_pre).map(Pre::Integration)
            }
            Kind::TrackingForwarder => {
                bindings::tracking_forwarder::TrackingForwarderPre::new(instance_pre)
                    .map(Pre::TrackingForwarder)
            }
        }
        .map_err(|e| {
            format!(
                "the plugin does not match the `{}` world: {e}",
                kind.as_str()
            )
        })?;
        Ok(Prepared {
            kind,
            pre,
            sha256,
            from_cache,
        })
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.engine_key())))
    }

    fn component(&self, bytes: &[u8], sha256: &str) -> Result<(Component, bool), String> {
        let path = self.cache_path(sha256);
        if let Some(path) = path.as_deref().filter(|p| p.is_file()) {
            // SAFETY: the cache directory is Magpie's own (under the data dir) and each
            // file was written by `precompile_component` of an engine with the same
            // compatibility hash (part of the file name).
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding an unusable cached plugin")
                }
            }
        }
        let started = Instant::now();
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            "compiled a plugin"
        );
        if let Some(path) = &path
            && let Err(e) = write_atomically(path, &compiled)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache a compiled plugin");
        }
        // SAFETY: produced just now by this engine.
        let component = unsafe { Component::deserialize(&self.engine, &compiled) }
            .map_err(|e| format!("{e}"))?;
        Ok((component, false))
    }

    /// A fresh instance for one call (or several, for a warm session).
    pub fn instantiate(&self, pre: &Pre, call: Arc<CallContext>) -> Result<Session, CallError> {
        let mut store = Store::new(&self.engine, Sandbox::new(call));
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.ticks(self.limits.call_timeout));
        let instance = match pre {
            Pre::EventTypes(p) => p.instantiate(&mut store).map(Instance::EventTypes),
            Pre::BatchAction(p) => p.instantiate(&mut store).map(Instance::BatchAction),
            Pre::Integration(p) => p.instantiate(&mut store).map(Instance::Integration),
            Pre::TrackingForwarder(p) => p.instantiate(&mut store).map(Instance::TrackingForwarder),
        }
        .map_err(classify)?;
        Ok(Session {
            store,
            instance,
            ticks: self.ticks(self.limits.call_timeout),
        })
    }

    fn ticks(&self, d: Duration) -> u64 {
        (d.as_millis() as u64)
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            .max(1)
            + 1
    }

    /// Ticks for a given deadline (loading uses a longer one).
    pub fn ticks_for(&self, d: Duration) -> u64 {
        self.ticks(d)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The kind, from the interface the component exports.
fn detect_kind(engine: &Engine, component: &Component) -> Result<Kind, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let has = |iface: &str| {
        exports
            .iter()
            .any(|e| e.starts_with(&format!("magpie:plugin/{iface}@")))
    };
    let found: Vec<Kind> = [
        (Kind::EventTypes, "timeline"),
        (Kind::BatchAction, "batch"),
        (Kind::Integration, "crm"),
        (Kind::TrackingForwarder, "forwarding"),
    ]
    .into_iter()
    .filter(|(_, i)| has(i))
    .map(|(k, _)| k)
    .collect();
    match found.as_slice() {
        [k] => Ok(*k),
        [] => Err(format!(
            "not a Magpie plugin: it exports none of the magpie:plugin worlds (exports: {})",
            if exports.is_empty() {
                "none".to_owned()
            } else {
                exports.join(", ")
            }
        )),
        _ => Err("a plugin must be of exactly one kind (it exports several worlds)".into()),
    }
}

/// Maps a failed call to what the host reports: timeouts, memory exhaustion and traps
/// are failures of the call (never the guest's `error`).
pub fn classify(e: wasmtime::Error) -> CallError {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => CallError::Timeout,
            Trap::StackOverflow => CallError::Trap("stack overflow".into()),
            other => CallError::Trap(other.to_string()),
        };
    }
    let text = format!("{e:#}");
    if text.contains("growing memory") || text.contains("memory") && text.contains("limit") {
        return CallError::MemoryExhausted;
    }
    if text.contains("maximum concurrent") || text.contains("pooling allocator") {
        return CallError::Busy;
    }
    CallError::Trap(text)
}

pub enum Instance {
    EventTypes(bindings::event_types::EventTypes),
    BatchAction(bindings::batch_action::BatchAction),
    Integration(bindings::integration::Integration),
    TrackingForwarder(bindings::tracking_forwarder::TrackingForwarder),
}

/// An instance and its store: one plugin call, or several on a warm instance.
pub struct Session {
    pub store: Store<Sandbox>,
    pub instance: Instance,
    ticks: u64,
}

impl Session {
    /// Re-arms the deadline: each call gets the full timeout.
    pub fn arm(&mut self) {
        self.store.set_epoch_deadline(self.ticks);
    }

    pub fn arm_for(&mut self, ticks: u64) {
        self.store.set_epoch_deadline(ticks);
    }

    pub fn describe(&mut self) -> Result<bindings::types::PluginInfo, CallError> {
        match &self.instance {
            Instance::EventTypes(i) => i.call_describe(&mut self.store),
            Instance::BatchAction(i) => i.call_describe(&mut self.store),
            Instance::Integration(i) => i.call_describe(&mut self.store),
            Instance::TrackingForwarder(i) => i.call_describe(&mut self.store),
        }
        .map_err(classify)
    }

    /// The timeline export and the store, for event-types plugins.
    fn timeline(&mut self) -> Result<(&bindings::timeline::Guest, &mut Store<Sandbox>), CallError> {
        match &self.instance {
            Instance::EventTypes(i) => Ok((i.magpie_plugin_timeline(), &mut self.store)),
            _ => Err(CallError::Unsupported(
                "this plugin does not provide event types".into(),
            )),
        }
    }

    pub fn event_types(&mut self) -> Result<Vec<bindings::timeline::EventType>, CallError> {
        let (t, store) = self.timeline()?;
        t.call_event_types(store).map_err(classify)
    }

    pub fn render(
        &mut self,
        events: &[bindings::types::Event],
    ) -> Result<Vec<Result<bindings::timeline::Rendered, bindings::types::Error>>, CallError> {
        let (t, store) = self.timeline()?;
        t.call_render(store, events).map_err(classify)
    }

    pub fn ingest(
        &mut self,
        request: &bindings::timeline::WebhookRequest,
    ) -> Result<Result<bindings::timeline::IngestResult, bindings::types::Error>, CallError> {
        let (t, store) = self.timeline()?;
        t.call_ingest(store, request).map_err(classify)
    }
}
