//! The registry: every loaded plugin with its compiled `InstancePre`, the admin's
//! decisions about it, and its call statistics. Built-ins come from the binary, more
//! from `<data-dir>/plugins/*.wasm` and uploads. Swapping a plugin replaces one `Arc`
//! in the map: calls in flight finish on the old code, new calls use the new one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Instant;

use serde_json::{Map, Value as Json, json};

use super::bindings::{timeline, types};
use super::capabilities::Capability;
use super::engine::{Pre, Runtime, Session};
use super::manifest::{self, Manifest};
use super::sandbox::CallContext;
use super::{CallError, Kind, Limits};
use crate::state::AppState;
use crate::store::{self, Store};
use crate::time::now_ms;
use crate::timeline::types::{EventType, Rendered};
use crate::timeline::{Event, NewEvent};

/// Where a plugin's code came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    /// `<data-dir>/plugins/<file>.wasm` at start, or an upload (written there).
    Directory(PathBuf),
}

/// The admin's decisions about a plugin (mirrors its database row).
#[derive(Clone, Debug)]
pub struct Settings {
    pub enabled: bool,
    pub granted: Vec<Capability>,
    pub config: Map<String, Json>,
    pub secret: String,
    pub disabled_reason: Option<String>,
}

#[derive(Default)]
struct Pending {
    calls: i64,
    errors: i64,
    us: i64,
    last_error: Option<String>,
    dirty: bool,
}

/// Call statistics: totals (database + this process) and what is not flushed yet.
#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub total_us: AtomicU64,
    pub streak: AtomicU64,
    last_error: Mutex<Option<String>>,
    pending: Mutex<Pending>,
}

pub struct Plugin {
    pub manifest: Manifest,
    pub origin: Origin,
    pub sha256: String,
    pub from_cache: bool,
    pre: Pre,
    pub settings: RwLock<Settings>,
    pub stats: Stats,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn is_enabled(&self) -> bool {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .enabled
    }

    /// Configuration values: the admin's, else the schema's defaults.
    pub fn config_values(&self) -> Vec<(String, String)> {
        let s = self.settings();
        self.manifest
            .settings
            .iter()
            .filter_map(|spec| {
                let v = s
                    .config
                    .get(&spec.key)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .or_else(|| spec.default_value.clone())?;
                Some((spec.key.clone(), v))
            })
            .collect()
    }

    pub fn mean_call_ms(&self) -> f64 {
        let calls = self.stats.calls.load(Ordering::Relaxed);
        if calls == 0 {
            0.0
        } else {
            self.stats.total_us.load(Ordering::Relaxed) as f64 / calls as f64 / 1000.0
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The admin's configuration values as shown to the admin: secrets that are set
    /// replaced by [`SECRET_MASK`], keys no longer in the schema left out.
    pub fn masked_config(&self) -> Map<String, Json> {
        let s = self.settings();
        self.manifest
            .settings
            .iter()
            .filter_map(|spec| {
                let v = s.config.get(&spec.key)?;
                Some((
                    spec.key.clone(),
                    if spec.is_secret() && v.as_str().is_some_and(|x| !x.is_empty()) {
                        json!(SECRET_MASK)
                    } else {
                        v.clone()
                    },
                ))
            })
            .collect()
    }

    /// Checks configuration values against the plugin's schema and answers the values
    /// to store, or the problems by key. `values` replaces the configuration: keys must be
    /// in the schema; required settings without a default must be set; values are text,
    /// numbers or booleans, checked by the setting's kind. A secret sent as
    /// [`SECRET_MASK`] keeps its stored value.
    pub fn check_config(
        &self,
        values: &Map<String, Json>,
    ) -> Result<Map<String, Json>, Vec<(String, String)>> {
        let old = self.settings().config;
        let mut out = Map::new();
        let mut problems: Vec<(String, String)> = Vec::new();
        for key in values.keys() {
            if !self.manifest.settings.iter().any(|s| &s.key == key) {
                problems.push((key.clone(), "is not a setting of this plugin".into()));
            }
        }
        for spec in &self.manifest.settings {
            let text = match values.get(&spec.key) {
                None | Some(Json::Null) => String::new(),
                Some(Json::String(s)) => s.trim().to_owned(),
                Some(Json::Bool(b)) => if *b { "1" } else { "0" }.to_owned(),
                Some(Json::Number(n)) => n.to_string(),
                Some(_) => {
                    problems.push((
                        spec.key.clone(),
                        "must be text, a number or a boolean".into(),
                    ));
                    continue;
                }
            };
            let text = if spec.is_secret() && text == SECRET_MASK {
                old.get(&spec.key)
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_owned()
            } else {
                text
            };
            if text.is_empty() {
                if spec.required && spec.default_value.is_none() {
                    problems.push((spec.key.clone(), "is required".into()));
                }
                continue;
            }
            let problem = match spec.kind {
                "integer" if text.parse::<i64>().is_err() => Some("must be a whole number"),
                "number" if !text.parse::<f64>().is_ok_and(f64::is_finite) => {
                    Some("must be a number")
                }
                "boolean" if !matches!(text.as_str(), "0" | "1" | "true" | "false") => {
                    Some("must be true or false")
                }
                "url" if !(text.starts_with("http://") || text.starts_with("https://")) => {
                    Some("must be an http:// or https:// URL")
                }
                "email" if !text.contains('@') => Some("must be an email address"),
                "select" if !spec.options.contains(&text) => Some("must be one of the options"),
                _ if text.len() > 10_000 => Some("must be at most 10,000 bytes"),
                _ => None,
            };
            if let Some(problem) = problem {
                problems.push((spec.key.clone(), problem.into()));
                continue;
            }
            out.insert(spec.key.clone(), json!(text));
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

/// What the admin sees instead of a secret setting's value (and sends back to keep it).
pub const SECRET_MASK: &str = "********";

/// A file in the plugins directory that could not be loaded.
#[derive(Clone, Debug)]
pub struct LoadFailure {
    pub file: String,
    pub error: String,
}

/// What a webhook call produced.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestOutcome {
    pub recorded: usize,
    /// (index in the plugin's list, why it was not recorded)
    pub skipped: Vec<(usize, String)>,
    pub message: Option<String>,
}

/// Errors of a webhook call, mapped to HTTP by the handler.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    NotFound(String),
    #[error("the webhook secret is missing or wrong")]
    Unauthorized,
    #[error("{0}")]
    Plugin(types::Error),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Events one webhook call may record.
pub const MAX_INGESTED: usize = 1000;

pub struct Plugins {
    pub runtime: Runtime,
    store: Store,
    dir: PathBuf,
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
    failures: RwLock<Vec<LoadFailure>>,
    state: OnceLock<Weak<AppState>>,
}

fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Plugins {
    /// The engine and an empty registry; `start` loads the plugins.
    pub fn new(
        data_dir: &std::path::Path,
        limits: Limits,
        store: Store,
    ) -> anyhow::Result<Plugins> {
        let runtime = Runtime::new(limits, Some(data_dir.join("plugin-cache")))?;
        Ok(Plugins {
            runtime,
            store,
            dir: data_dir.join("plugins"),
            plugins: RwLock::new(BTreeMap::new()),
            failures: RwLock::new(Vec::new()),
            state: OnceLock::new(),
        })
    }

    pub fn limits(&self) -> Limits {
        self.runtime.limits
    }

    /// Loads the built-ins and `<data-dir>/plugins/*.wasm`, with their stored settings,
    /// and feeds the timeline catalogue. A file that fails to load is logged and listed,
    /// never fatal; a built-in that fails is fatal (the binary is broken).
    pub async fn start(self: &Arc<Self>, state: &Arc<AppState>) -> anyhow::Result<()> {
        let _ = self.state.set(Arc::downgrade(state));
        state
            .events
            .set_renderer(Arc::downgrade(self) as Weak<dyn crate::timeline::types::Renderer>);
        let started = Instant::now();
        for (name, bytes) in super::BUILT_IN {
            let plugin = self
                .load(bytes.to_vec(), Origin::BuiltIn)
                .await
                .map_err(|e| anyhow::anyhow!("built-in plugin {name}: {e}"))?;
            self.insert(plugin);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", self.dir.display()))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        for path in files {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let result = match std::fs::read(&path) {
                Ok(bytes) => self.load(bytes, Origin::Directory(path.clone())).await,
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(p)
                    if self
                        .get(p.name())
                        .is_some_and(|old| old.origin == Origin::BuiltIn) =>
                {
                    self.fail(file, format!("`{}` is a built-in plugin's name", p.name()));
                }
                Ok(p) => self.insert(p),
                Err(error) => self.fail(file, error),
            }
        }
        self.refresh_catalogue();
        let names: Vec<String> = self
            .list()
            .iter()
            .map(|p| format!("{}@{}", p.name(), p.manifest.version))
            .collect();
        tracing::info!(plugins = %names.join(", "), pooling = self.runtime.pooling, ms = started.elapsed().as_millis() as u64, "plugins loaded");
        Ok(())
    }

    fn fail(&self, file: String, error: String) {
        tracing::error!(%file, %error, "a plugin could not be loaded");
        self.failures
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(LoadFailure { file, error });
    }

    pub fn load_failures(&self) -> Vec<LoadFailure> {
        self.failures
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn insert(&self, plugin: Plugin) {
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(plugin.name().to_owned(), Arc::new(plugin));
    }

    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Built-ins first, then the others by name.
    pub fn list(&self) -> Vec<Arc<Plugin>> {
        let mut all: Vec<Arc<Plugin>> = self
            .plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|p| (p.origin != Origin::BuiltIn, p.name().to_owned()));
        all
    }

    /// Compiles, links and describes a component, then reads (or creates) its row.
    async fn load(&self, bytes: Vec<u8>, origin: Origin) -> Result<Plugin, String> {
        let (prepared, manifest) = self.inspect(bytes).await?;
        let mut db = self.store.begin().await.map_err(|e| e.to_string())?;
        let requested: Vec<String> = manifest
            .capabilities
            .iter()
            .map(ToString::to_string)
            .collect();
        // Built-ins are granted what they request; other plugins nothing until the admin says.
        let (enabled, granted) = match origin {
            Origin::BuiltIn => (true, json!(requested).to_string()),
            Origin::Directory(_) => (true, "[]".to_owned()),
        };
        store::plugins::ensure(
            &mut db,
            &manifest.name,
            enabled,
            &granted,
            &new_secret(),
            now_ms(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let row = store::plugins::get(&mut db, &manifest.name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the plugin's row vanished")?;
        db.commit().await.map_err(|e| e.to_string())?;
        let granted: Vec<Capability> = serde_json::from_str::<Vec<String>>(&row.granted)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| Capability::parse(c).ok())
            .collect();
        let stats = Stats::default();
        stats
            .calls
            .store(row.calls.max(0) as u64, Ordering::Relaxed);
        stats
            .errors
            .store(row.errors.max(0) as u64, Ordering::Relaxed);
        stats
            .total_us
            .store(row.total_call_us.max(0) as u64, Ordering::Relaxed);
        stats
            .streak
            .store(row.consecutive_failures.max(0) as u64, Ordering::Relaxed);
        *stats.last_error.lock().unwrap_or_else(|e| e.into_inner()) = row.last_error.clone();
        for w in &manifest.warnings {
            tracing::warn!(plugin = %manifest.name, "{w}");
        }
        Ok(Plugin {
            settings: RwLock::new(Settings {
                enabled: row.enabled,
                granted,
                config: serde_json::from_str(&row.config).unwrap_or_default(),
                secret: row.webhook_secret,
                disabled_reason: row.disabled_reason,
            }),
            manifest,
            origin,
            sha256: prepared.sha256,
            from_cache: prepared.from_cache,
            pre: prepared.pre,
            stats,
        })
    }

    /// Compiles and describes a component without touching the registry (validation).
    pub async fn inspect(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(super::engine::Prepared, Manifest), String> {
        let this = self.self_arc();
        let run = move |rt: &Runtime| -> Result<(super::engine::Prepared, Manifest), String> {
            let prepared = rt.prepare(&bytes)?;
            let limits = rt.limits;
            let mut call = CallContext::detached("(loading)", limits);
            call.deadline = Instant::now() + limits.load_timeout;
            let mut session = rt
                .instantiate(&prepared.pre, Arc::new(call))
                .map_err(|e| format!("cannot instantiate the plugin: {e}"))?;
            session.arm_for(rt.ticks_for(limits.load_timeout));
            let info = session
                .describe()
                .map_err(|e| format!("describe failed: {e}"))?;
            let event_types = if prepared.kind == Kind::EventTypes {
                session
                    .event_types()
                    .map_err(|e| format!("event-types failed: {e}"))?
            } else {
                Vec::new()
            };
            let manifest = manifest::validate(info, prepared.kind, event_types)?;
            Ok((prepared, manifest))
        };
        match this {
            Some(this) => tokio::task::spawn_blocking(move || run(&this.runtime))
                .await
                .map_err(|e| format!("loading panicked: {e}"))?,
            None => run(&self.runtime),
        }
    }

    /// This registry as an `Arc` (it lives in `AppState`), to move into blocking tasks.
    fn self_arc(&self) -> Option<Arc<Plugins>> {
        Some(self.state.get()?.upgrade()?.plugins.clone())
    }

    /// Validates and installs an uploaded component: written to the plugins directory
    /// and swapped in, or refused with a message (nothing changes then).
    pub async fn install(&self, bytes: Vec<u8>) -> Result<Arc<Plugin>, String> {
        let (_, manifest) = self.inspect(bytes.clone()).await?;
        if self
            .get(&manifest.name)
            .is_some_and(|p| p.origin == Origin::BuiltIn)
        {
            return Err(format!(
                "`{}` is a built-in plugin; choose another name",
                manifest.name
            ));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let path = self.dir.join(format!("{}.wasm", manifest.name));
        let tmp = self.dir.join(format!(".{}.wasm.tmp", manifest.name));
        std::fs::write(&tmp, &bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        // The statistics of the plugin being replaced reach the row the new one reads.
        if let Err(e) = self.flush_stats().await {
            tracing::warn!(error = %e, "cannot save plugin statistics");
        }
        let plugin = match self.load(bytes, Origin::Directory(path.clone())).await {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let name = plugin.name().to_owned();
        self.insert(plugin);
        self.failures
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|f| f.file != format!("{name}.wasm"));
        self.refresh_catalogue();
        tracing::info!(plugin = %name, "plugin installed");
        self.get(&name).ok_or_else(|| "the plugin vanished".into())
    }

    /// Removes an uploaded plugin (its file; its row and storage stay for a reinstall).
    pub async fn remove(&self, name: &str) -> Result<bool, String> {
        let Some(p) = self.get(name) else {
            return Ok(false);
        };
        let Origin::Directory(path) = &p.origin else {
            return Err("built-in plugins cannot be removed; disable them".into());
        };
        std::fs::remove_file(path).map_err(|e| e.to_string())?;
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.refresh_catalogue();
        Ok(true)
    }

    // --- the admin's decisions -------------------------------------------------------

    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<bool, sqlx::Error> {
        let Some(p) = self.get(name) else {
            return Ok(false);
        };
        let mut tx = self.store.begin().await?;
        store::plugins::set_enabled(&mut tx, name, enabled, None, now_ms()).await?;
        tx.commit().await?;
        {
            let mut s = p.settings.write().unwrap_or_else(|e| e.into_inner());
            s.enabled = enabled;
            s.disabled_reason = None;
        }
        if enabled {
            p.stats.streak.store(0, Ordering::Relaxed);
        }
        self.refresh_catalogue();
        Ok(true)
    }

    pub async fn set_granted(
        &self,
        name: &str,
        granted: Vec<Capability>,
    ) -> Result<bool, sqlx::Error> {
        let Some(p) = self.get(name) else {
            return Ok(false);
        };
        let text = json!(granted.iter().map(ToString::to_string).collect::<Vec<_>>()).to_string();
        let mut tx = self.store.begin().await?;
        store::plugins::set_granted(&mut tx, name, &text, now_ms()).await?;
        tx.commit().await?;
        p.settings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .granted = granted;
        Ok(true)
    }

    pub async fn set_config(
        &self,
        name: &str,
        config: Map<String, Json>,
    ) -> Result<bool, sqlx::Error> {
        let Some(p) = self.get(name) else {
            return Ok(false);
        };
        let mut tx = self.store.begin().await?;
        store::plugins::set_config(
            &mut tx,
            name,
            &Json::Object(config.clone()).to_string(),
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        p.settings.write().unwrap_or_else(|e| e.into_inner()).config = config;
        Ok(true)
    }

    pub async fn rotate_secret(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        let Some(p) = self.get(name) else {
            return Ok(None);
        };
        let secret = new_secret();
        let mut tx = self.store.begin().await?;
        store::plugins::set_secret(&mut tx, name, &secret, now_ms()).await?;
        tx.commit().await?;
        p.settings.write().unwrap_or_else(|e| e.into_inner()).secret = secret.clone();
        Ok(Some(secret))
    }

    /// Writes the statistics gathered since the last flush.
    pub async fn flush_stats(&self) -> Result<(), sqlx::Error> {
        for p in self.list() {
            let (calls, errors, us, last_error) = {
                let mut pending = p.stats.pending.lock().unwrap_or_else(|e| e.into_inner());
                if !pending.dirty {
                    continue;
                }
                let taken = std::mem::take(&mut *pending);
                (taken.calls, taken.errors, taken.us, taken.last_error)
            };
            let streak = p.stats.streak.load(Ordering::Relaxed) as i64;
            let mut tx = self.store.begin().await?;
            store::plugins::add_stats(
                &mut tx,
                p.name(),
                calls,
                errors,
                us,
                streak,
                last_error.as_deref(),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Feeds the catalogue with the event types of enabled event-types plugins
    /// (built-ins first; a key already taken by an earlier plugin is refused).
    pub fn refresh_catalogue(&self) {
        let Some(state) = self.state.get().and_then(Weak::upgrade) else {
            return;
        };
        let mut types: Vec<(EventType, String)> = Vec::new();
        for p in self
            .list()
            .iter()
            .filter(|p| p.manifest.kind == Kind::EventTypes && p.is_enabled())
        {
            for t in &p.manifest.event_types {
                match types.iter().find(|(x, _)| x.key == t.key) {
                    Some((_, owner)) => {
                        tracing::warn!(plugin = %p.name(), key = %t.key, owner = %owner, "event type already provided by another plugin; ignored")
                    }
                    None => types.push((t.clone(), p.name().to_owned())),
                }
            }
        }
        state.events.set_types(types);
    }

    // --- calls -----------------------------------------------------------------------

    fn context(&self, p: &Plugin, with_host: bool) -> CallContext {
        let settings = p.settings();
        let limits = self.runtime.limits;
        CallContext {
            plugin: p.name().to_owned(),
            granted: settings.granted,
            config: p.config_values(),
            own_types: self.provided_types(p),
            state: if with_host {
                self.state.get().cloned()
            } else {
                None
            },
            runtime: if with_host {
                tokio::runtime::Handle::try_current().ok()
            } else {
                None
            },
            deadline: Instant::now() + limits.call_timeout,
            limits,
        }
    }

    /// The event types a plugin actually provides: declared, and not taken by another.
    fn provided_types(&self, p: &Plugin) -> Vec<String> {
        let Some(state) = self.state.get().and_then(Weak::upgrade) else {
            return Vec::new();
        };
        p.manifest
            .event_types
            .iter()
            .filter(|t| state.events.provider(&t.key).as_deref() == Some(p.name()))
            .map(|t| t.key.clone())
            .collect()
    }

    fn enabled(&self, name: &str) -> Result<Arc<Plugin>, CallError> {
        let p = self
            .get(name)
            .ok_or_else(|| CallError::NotLoaded(name.to_owned()))?;
        if !p.is_enabled() {
            return Err(CallError::Disabled(name.to_owned()));
        }
        Ok(p)
    }

    /// Runs `f` on a fresh instance of `p` (on the current thread: callers in async code
    /// use `spawn_blocking`), and accounts for it: time, errors, failure streak, and
    /// disabling after too many failures in a row.
    pub fn call<R>(
        &self,
        p: &Plugin,
        ctx: CallContext,
        f: impl FnOnce(&mut Session) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let started = Instant::now();
        let result = self
            .runtime
            .instantiate(&p.pre, Arc::new(ctx))
            .and_then(|mut s| f(&mut s));
        let us = started.elapsed().as_micros() as u64;
        self.account(p, us, result.as_ref().err());
        result
    }

    fn account(&self, p: &Plugin, us: u64, error: Option<&CallError>) {
        let failed = error.is_some_and(CallError::is_failure);
        p.stats.calls.fetch_add(1, Ordering::Relaxed);
        p.stats.total_us.fetch_add(us, Ordering::Relaxed);
        if failed {
            p.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        let streak = if failed {
            p.stats.streak.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            p.stats.streak.store(0, Ordering::Relaxed);
            0
        };
        {
            let mut pending = p.stats.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.calls += 1;
            pending.us += us as i64;
            pending.dirty = true;
            if failed {
                pending.errors += 1;
                pending.last_error = error.map(ToString::to_string);
            }
        }
        let Some(error) = error.filter(|_| failed) else {
            return;
        };
        *p.stats.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
        tracing::warn!(plugin = %p.name(), error = %error, streak, "plugin call failed");
        let max = u64::from(self.runtime.limits.max_consecutive_failures);
        if streak >= max && p.is_enabled() {
            let reason = format!("disabled after {streak} consecutive failures; last: {error}");
            tracing::error!(plugin = %p.name(), %reason, "plugin disabled");
            {
                let mut s = p.settings.write().unwrap_or_else(|e| e.into_inner());
                s.enabled = false;
                s.disabled_reason = Some(reason.clone());
            }
            self.refresh_catalogue();
            let store = self.store.clone();
            let name = p.name().to_owned();
            let persist = async move {
                let result = async {
                    let mut tx = store.begin().await?;
                    store::plugins::set_enabled(&mut tx, &name, false, Some(&reason), now_ms())
                        .await?;
                    tx.commit().await
                }
                .await;
                if let Err(e) = result {
                    tracing::error!(plugin = %name, error = %e, "cannot record that the plugin was disabled");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(persist);
                }
                Err(_) => tracing::warn!("no runtime: the disabled state is kept in memory only"),
            }
        }
    }

    /// Renders events of one plugin's types (one call for all of them). `None` for an
    /// event the plugin could not render (shown raw).
    pub fn render_blocking(
        &self,
        plugin: &str,
        events: &[Event],
    ) -> Result<Vec<Option<Rendered>>, CallError> {
        let p = self.enabled(plugin)?;
        let wit_events: Vec<types::Event> = events
            .iter()
            .map(|e| types::Event {
                id: e.id,
                contact_id: e.contact_id,
                event_type: e.event_type.clone(),
                source: e.source.clone(),
                occurred_at: e.occurred_at,
                properties: e.properties.to_string(),
            })
            .collect();
        let ctx = self.context(&p, false);
        self.call(&p, ctx, |s| {
            let out = s.render(&wit_events)?;
            if out.len() != wit_events.len() {
                return Err(CallError::Malformed(format!(
                    "render answered {} results for {} events",
                    out.len(),
                    wit_events.len()
                )));
            }
            Ok(out
                .into_iter()
                .map(|r| r.ok().map(clean_rendered))
                .collect())
        })
    }

    /// A webhook request: authenticated by the plugin's secret, turned into events by
    /// the plugin, checked, and recorded on the contacts it names.
    pub async fn ingest(
        &self,
        plugin: &str,
        secret: Option<&str>,
        request: timeline::WebhookRequest,
    ) -> Result<IngestOutcome, IngestError> {
        let p = self
            .get(plugin)
            .filter(|p| p.manifest.kind == Kind::EventTypes)
            .ok_or_else(|| IngestError::NotFound(format!("no plugin `{plugin}` takes webhooks")))?;
        let expected = p.settings().secret;
        let given = secret.unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.as_bytes(),
        )) {
            return Err(IngestError::Unauthorized);
        }
        if !p.is_enabled() {
            return Err(CallError::Disabled(plugin.to_owned()).into());
        }
        let this = self
            .self_arc()
            .ok_or_else(|| IngestError::NotFound("the server is stopping".into()))?;
        let p2 = p.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let ctx = this.context(&p2, true);
            this.call(&p2, ctx, |s| {
                let r = s.ingest(&request)?;
                if let Ok(ok) = &r
                    && ok.events.len() > MAX_INGESTED
                {
                    return Err(CallError::Malformed(format!(
                        "ingest answered {} events (at most {MAX_INGESTED})",
                        ok.events.len()
                    )));
                }
                Ok(r)
            })
        })
        .await
        .map_err(|e| CallError::Trap(format!("the call panicked: {e}")))??;
        let result = answer.map_err(IngestError::Plugin)?;
        if result.events.is_empty() {
            return Ok(IngestOutcome {
                recorded: 0,
                skipped: Vec::new(),
                message: result.message.map(|m| clip(&m, 1000)),
            });
        }
        if !p.settings().granted.contains(&Capability::RecordEvents) {
            return Err(IngestError::Denied(format!(
                "the plugin `{plugin}` lacks the `record-events` capability"
            )));
        }
        let own = self.provided_types(&p);
        let source = format!("plugin:{plugin}");
        let mut skipped = Vec::new();
        let mut events = Vec::new();
        let mut db = self.store.read().await?;
        let now = now_ms();
        for (i, e) in result.events.iter().enumerate() {
            let props =
                match super::host::check_event(&own, |_| false, &e.event_type, &e.properties) {
                    Ok(v) => v,
                    Err(m) => {
                        skipped.push((i, m));
                        continue;
                    }
                };
            match super::lookup::resolve(&mut db, &e.contact).await? {
                Some(contact) => events.push(
                    NewEvent::new(contact, &e.event_type, e.occurred_at.unwrap_or(now), props)
                        .source(&source),
                ),
                None => skipped.push((i, "no such contact".to_owned())),
            }
        }
        drop(db);
        let mut tx = self.store.begin().await?;
        store::events::insert(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(IngestOutcome {
            recorded: events.len(),
            skipped,
            message: result.message.map(|m| clip(&m, 1000)),
        })
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

/// A plugin's rendering, bounded and stripped of anything that is not data: summary and
/// rows clipped, at most 100 rows, links only to http(s) URLs or paths on Magpie.
pub fn clean_rendered(r: timeline::Rendered) -> Rendered {
    let link = r.link.and_then(|l| {
        let u = l.url.trim();
        let ok = u.starts_with("https://")
            || u.starts_with("http://")
            || (u.starts_with('/') && !u.starts_with("//"));
        (ok && u.len() <= 2000 && !u.chars().any(char::is_control)).then(|| u.to_owned())
    });
    Rendered {
        summary: clip(&r.summary, 500),
        rows: r
            .rows
            .into_iter()
            .take(100)
            .map(|p| (clip(&p.name, 200), clip(&p.value, 5000)))
            .collect(),
        link,
        raw: false,
    }
}

impl crate::timeline::types::Renderer for Plugins {
    fn render(&self, plugin: &str, events: &[Event]) -> Result<Vec<Option<Rendered>>, String> {
        self.render_blocking(plugin, events)
            .map_err(|e| e.to_string())
    }
}
