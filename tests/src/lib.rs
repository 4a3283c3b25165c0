//! The test harness: a real Magpie server on a free port, on a fresh SQLite file or a
//! fresh PostgreSQL database, and a small HTTP client speaking to it as API clients do.

use std::path::PathBuf;
use std::time::Duration;

pub use reqwest::StatusCode;
pub use serde_json::{Value, json};

use magpie::config::{Config, FileConfig};
use magpie::server::Running;

pub mod browser;
pub mod process;
pub mod web;

pub const ADMIN_PASSWORD: &str = "admin-test-password";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::skip_postgres() {
                        return;
                    }
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}

/// PostgreSQL tests need `MAGPIE_TEST_DATABASE_URL` (an account allowed to create
/// databases). Skipping them must be asked for explicitly.
pub fn skip_postgres() -> bool {
    if std::env::var("MAGPIE_TEST_DATABASE_URL").is_ok() {
        return false;
    }
    if std::env::var("MAGPIE_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("skipping a PostgreSQL test: MAGPIE_TEST_SKIP_POSTGRES=1");
        return true;
    }
    panic!(
        "PostgreSQL tests need MAGPIE_TEST_DATABASE_URL (./scripts/test sets it up), or MAGPIE_TEST_SKIP_POSTGRES=1 to skip them"
    );
}

/// A fresh, uniquely named PostgreSQL database; returns (its URL, the admin URL, its name).
pub async fn create_pg_database() -> (String, String, String) {
    use sqlx::Connection;
    let admin = std::env::var("MAGPIE_TEST_DATABASE_URL").expect("MAGPIE_TEST_DATABASE_URL");
    let name = format!("magpie_test_{}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to MAGPIE_TEST_DATABASE_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let (base, query) = match admin.split_once('?') {
        Some((_, q)) => (base.split('?').next().unwrap_or(base), format!("?{q}")),
        None => (base, String::new()),
    };
    (format!("{base}/{name}{query}"), admin.clone(), name)
}

/// A database for a test that runs the real binary: a SQLite file in `dir`, or a fresh
/// PostgreSQL database; returns its URL and, for PostgreSQL, what `drop_pg_database` needs.
pub async fn scratch_database(
    backend: Backend,
    dir: &std::path::Path,
) -> (String, Option<(String, String)>) {
    match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.join("magpie.db").display()),
            None,
        ),
        Backend::Postgres => {
            let (url, admin, name) = create_pg_database().await;
            (url, Some((admin, name)))
        }
    }
}

pub async fn drop_pg_database(admin: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// A running server and a client for it.
pub struct TestServer {
    pub base: String,
    pub backend: Backend,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub database_url: String,
    config_toml: String,
    running: Option<Running>,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self.body
    }
    /// The first Mautic error message.
    pub fn error_message(&self) -> String {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, "").await
    }

    /// Starts with a `magpie.toml` text.
    pub async fn start_with(backend: Backend, config_toml: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("magpie.db").display()),
                None,
            ),
            Backend::Postgres => {
                let (url, admin, name) = create_pg_database().await;
                (url, Some((admin, name)))
            }
        };
        let running = start_running(dir.path(), &database_url, config_toml).await;
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        TestServer {
            base,
            backend,
            client,
            data_dir: dir.path().to_path_buf(),
            database_url,
            config_toml: config_toml.to_owned(),
            running: Some(running),
            _dir: dir,
            pg,
        }
    }

    /// Stops the server and starts a new one on the same data dir and database.
    pub async fn restart(&mut self) {
        self.halt().await;
        self.resume().await;
    }

    /// Stops the server, leaving its data dir and database (`resume` starts it again).
    pub async fn halt(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }

    /// The `magpie.toml` text the next `resume` starts with.
    pub fn set_config(&mut self, config_toml: &str) {
        self.config_toml = config_toml.to_owned();
    }

    /// Starts a server on the data dir and database of a halted one.
    pub async fn resume(&mut self) {
        let running = start_running(&self.data_dir, &self.database_url, &self.config_toml).await;
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    /// Uploads a plugin (`.wasm` bytes) through the admin API.
    pub async fn upload_plugin(&self, bytes: Vec<u8>) -> Response {
        self.raw(
            reqwest::Method::POST,
            "/api/plugins/upload",
            "application/wasm",
            bytes,
        )
        .await
    }

    /// Calls a plugin's webhook (no Basic auth; the secret as `X-Magpie-Secret`).
    pub async fn hook(
        &self,
        plugin: &str,
        path: &str,
        secret: Option<&str>,
        body: Value,
    ) -> Response {
        let mut req = self
            .client
            .post(self.url(&format!("/plugins/{plugin}/hook/{path}")))
            .json(&body);
        if let Some(s) = secret {
            req = req.header("x-magpie-secret", s);
        }
        self.send(req).await
    }

    /// A plugin's webhook secret.
    pub async fn plugin_secret(&self, plugin: &str) -> String {
        self.get(&format!("/api/plugins/{plugin}/secret"))
            .await
            .expect(200)["secret"]
            .as_str()
            .expect("secret")
            .to_owned()
    }

    pub fn state(&self) -> &magpie::state::SharedState {
        &self.running.as_ref().expect("running").state
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Waits until every pixel hit answered so far is applied (the pixel is answered once
    /// its hit is journaled; see `tracking::journal`).
    pub async fn settled(&self) {
        self.state().tracker.settled().await;
    }

    /// Sends a request once earlier pixel hits are applied, so a test reads what it wrote.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Response {
        self.settled().await;
        let r = req.send().await.expect("request sent");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.authed(self.client.get(self.url(path))))
            .await
    }
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send(self.authed(self.client.post(self.url(path)).json(&body)))
            .await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.send(self.authed(self.client.patch(self.url(path)).json(&body)))
            .await
    }
    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.send(self.authed(self.client.put(self.url(path)).json(&body)))
            .await
    }
    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.authed(self.client.delete(self.url(path))))
            .await
    }
    /// A request with a raw body and content type.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let req = self
            .client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body);
        self.send(self.authed(req)).await
    }

    /// Creates a contact through the API and returns its id.
    pub async fn create_contact(&self, body: Value) -> i64 {
        let r = self.post("/api/contacts/new", body).await;
        assert!(r.status.is_success(), "create failed: {}", r.text);
        r.body["contact"]["id"].as_i64().expect("id")
    }

    /// A contact's timeline (`GET /api/contacts/{id}/activity?{query}`), expecting 200.
    pub async fn activity(&self, contact: i64, query: &str) -> Value {
        self.get(&format!("/api/contacts/{contact}/activity?{query}"))
            .await
            .expect(200)
    }

    /// Stops the server (draining requests) and drops a PostgreSQL test database.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
        if let Some((admin, name)) = self.pg.take() {
            drop_pg_database(&admin, &name).await;
        }
    }
}

async fn start_running(dir: &std::path::Path, database_url: &str, config_toml: &str) -> Running {
    let mut config = Config::for_data_dir(dir, Some(database_url.to_owned()));
    config.file = FileConfig::parse(config_toml).expect("valid test config");
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    magpie::server::start(config).await.expect("server starts")
}

/// CPU time this whole process has used so far (every thread, user and system), in
/// seconds: benchmarks divide its growth by the work done, to say what the work costs
/// on this machine's cores besides how fast it went. Linux's `/proc` counts in ticks of
/// 1/100 s (`USER_HZ`, fixed at 100 for user space).
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name, from 0.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A hostile test plugin (built by the host's build script, never embedded).
pub fn test_plugin(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(magpie::plugins::TEST_PLUGINS_DIR).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("test plugin {}: {e}", path.display()))
}

/// A tiny HTTP server on 127.0.0.1 answering every request with `hello`; returns its port.
pub async fn hello_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    port
}

/// The path of the test build of the `magpie` binary (only integration tests know it).
#[macro_export]
macro_rules! magpie_binary {
    () => {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_magpie-test-server"))
    };
}
