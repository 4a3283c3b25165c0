//! Start-up and shutdown: open the database, migrate, seed, bootstrap the first admin,
//! serve until told to stop, then drain and close.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::state::{AppState, SharedState};
use crate::store::{self, Store};
use crate::time::now_ms;
use crate::users::{self, Role};

/// Opens and migrates the database and makes sure the default fields exist: all that
/// `magpie migrate` and `magpie user add` need.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
    })?;
    let store = Store::connect(&config.database_url).await?;
    store::migrate::run(&store).await?;
    let mut tx = store.begin().await?;
    store::fields::seed_defaults(&mut tx, now_ms()).await?;
    tx.commit().await?;
    Ok(store)
}

/// Everything a server needs before it listens: the store (`open_store`), the first
/// administrator, the tracking key, the plugins.
pub async fn prepare(config: Config) -> anyhow::Result<SharedState> {
    let store = open_store(&config).await?;
    bootstrap_admin(&store, config.admin_password.as_deref()).await?;
    let secret = tracking_secret(&store).await?;
    let state = Arc::new(AppState::new(config, store, secret)?);
    state.plugins.start(&state).await?;
    Ok(state)
}

/// The key for signed tracking tokens: created once, kept in the database so every
/// process (and every restart) agrees on it.
async fn tracking_secret(store: &Store) -> anyhow::Result<Vec<u8>> {
    use rand::RngCore;
    const KEY: &str = "tracking.secret";
    let mut tx = store.begin().await?;
    if store::settings::get(&mut tx, KEY).await?.is_none() {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        store::settings::insert_if_missing(&mut tx, KEY, &hex).await?;
    }
    let hex = store::settings::get(&mut tx, KEY)
        .await?
        .unwrap_or_default();
    tx.commit().await?;
    Ok(hex.into_bytes())
}

/// First start with no users (or no administrator): create `admin` with
/// `MAGPIE_ADMIN_PASSWORD` or a random password printed once.
async fn bootstrap_admin(store: &Store, password: Option<&str>) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    // No users at all (the first start), or only users `magpie user add` made without
    // an administrator among them: the instance needs one to be administered.
    let users = store::users::list(&mut tx).await?;
    if users.iter().any(|u| u.is_admin()) {
        return Ok(());
    }
    if users.iter().any(|u| u.username == "admin") {
        tracing::warn!(
            "there is no administrator and the user 'admin' is not one: add one with `magpie user add --role admin`"
        );
        return Ok(());
    }
    let (password, generated) = match password {
        Some(p) => {
            users::check_new_password(p)
                .map_err(|e| anyhow::anyhow!("MAGPIE_ADMIN_PASSWORD: {e}"))?;
            (p.to_owned(), false)
        }
        None => (users::random_password(), true),
    };
    let hash = users::hash_password(&password)?;
    let user = store::users::NewUser {
        username: "admin",
        email: "",
        first_name: "Admin",
        last_name: "",
        role: Role::Admin,
        password_hash: &hash,
    };
    store::users::insert(&mut tx, &user, now_ms()).await?;
    tx.commit().await?;
    if generated {
        // Printed once, on purpose: the operator has no other way to learn it. Straight to
        // stderr when the log filter would hide it (`RUST_LOG=error`).
        let said =
            format!("created user 'admin' with password {password} — change it after logging in");
        if tracing::enabled!(tracing::Level::WARN) {
            tracing::warn!("{said}");
        } else {
            eprintln!("{said}");
        }
    } else {
        tracing::info!("created user 'admin' with the password from MAGPIE_ADMIN_PASSWORD");
    }
    Ok(())
}

/// A server running in this process (tests and `serve`).
pub struct Running {
    pub addr: SocketAddr,
    pub state: SharedState,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stop_writers: tokio::sync::watch::Sender<bool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    jobs: crate::jobs::Runner,
}

impl Running {
    /// Stops accepting, waits for in-flight requests and for background jobs to reach a
    /// checkpoint (they continue from there on the next start), flushes the background
    /// writers, closes the database.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let grace = Duration::from_secs(self.state.config.file.server.shutdown_grace_seconds);
        // A grace too long to add to the clock is as good as none.
        let deadline = tokio::time::Instant::now().checked_add(grace);
        self.jobs.shutdown(&self.state).await;
        match deadline {
            None => (&mut self.task).await?,
            Some(deadline) => match tokio::time::timeout_at(deadline, &mut self.task).await {
                Ok(served) => served?,
                Err(_) => {
                    // Their connections are not waited for any more: they end with the
                    // process, and what they write meanwhile is written whole or not.
                    tracing::warn!(
                        grace_seconds = grace.as_secs(),
                        "requests still in flight after the shutdown grace period: not waiting for them"
                    );
                    self.task.abort();
                }
            },
        }
        let _ = self.stop_writers.send(true);
        for w in self.writers {
            let _ = w.await;
        }
        if let Err(e) = self.state.plugins.flush_stats().await {
            tracing::warn!(error = %e, "cannot save plugin statistics");
        }
        self.state.store.close().await;
        Ok(())
    }
}

/// Binds `config.listen` and serves in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listen = config.listen;
    let state = prepare(config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    state.jobs.set_listen_addr(addr);
    let jobs = crate::jobs::Runner::start(state.clone()).await?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let (stop_writers, writers_stopped) = tokio::sync::watch::channel(false);
    let mut writers =
        crate::tracking::Tracker::start(state.clone(), writers_stopped.clone()).await?;
    writers.extend(crate::store::free_text::spawn_indexer(
        state.store.clone(),
        writers_stopped.clone(),
    ));
    writers.extend(state.store.spawn_checkpointer(writers_stopped));
    let app = crate::http::app(state.clone());
    // Plugin call statistics are counted in memory and written every few seconds.
    let flusher = {
        let state = Arc::downgrade(&state);
        let mut stopped = stop.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                let Some(state) = state.upgrade() else { break };
                if let Err(e) = state.plugins.flush_stats().await {
                    tracing::warn!(error = %e, "cannot save plugin statistics");
                }
            }
        })
    };
    drop(flusher);
    let header_timeout = Duration::from_secs(state.config.file.server.header_timeout_seconds);
    let task = tokio::spawn(async move {
        crate::http::serve::serve(listener, app, header_timeout, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    });
    Ok(Running {
        addr,
        state,
        stop,
        task,
        stop_writers,
        writers,
        jobs,
    })
}

/// `magpie serve`: runs until SIGTERM or SIGINT, then shuts down cleanly.
pub async fn serve(config: Config, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(config).await?;
    tracing::info!(addr = %running.addr, backend = ?running.state.store.backend(), "magpie is listening");
    signal.await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
