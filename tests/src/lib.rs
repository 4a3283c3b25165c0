//! The test harness: a real Magpie server on a free port, on a fresh SQLite file or a
//! fresh PostgreSQL database, and a small HTTP client speaking to it as API clients do.

use std::path::PathBuf;
use std::time::Duration;

pub use reqwest::StatusCode;
pub use serde_json::{Value, json};

use magpie::config::{Config, FileConfig};
use magpie::server::Running;

pub mod browser;

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
    panic!("PostgreSQL tests need MAGPIE_TEST_DATABASE_URL (./scripts/test sets it up), or MAGPIE_TEST_SKIP_POSTGRES=1 to skip them");
}

/// A fresh, uniquely named PostgreSQL database; returns (its URL, the admin URL, its name).
pub async fn create_pg_database() -> (String, String, String) {
    use sqlx::Connection;
    let admin = std::env::var("MAGPIE_TEST_DATABASE_URL").expect("MAGPIE_TEST_DATABASE_URL");
    let name = format!("magpie_test_{}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to MAGPIE_TEST_DATABASE_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create test database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let (base, query) = match admin.split_once('?') {
        Some((_, q)) => (base.split('?').next().unwrap_or(base), format!("?{q}")),
        None => (base, String::new()),
    };
    (format!("{base}/{name}{query}"), admin.clone(), name)
}

pub async fn drop_pg_database(admin: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut conn).await;
    }
}

/// A running server and a client for it.
pub struct TestServer {
    pub base: String,
    pub backend: Backend,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub database_url: String,
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
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self.body
    }
    /// The first Mautic error message.
    pub fn error_message(&self) -> String {
        self.body["errors"][0]["message"].as_str().unwrap_or("").to_owned()
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
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("magpie.db").display()), None),
            Backend::Postgres => {
                let (url, admin, name) = create_pg_database().await;
                (url, Some((admin, name)))
            }
        };
        let mut config = Config::for_data_dir(dir.path(), Some(database_url.clone()));
        config.file = FileConfig::parse(config_toml).expect("valid test config");
        config.admin_password = Some(ADMIN_PASSWORD.to_owned());
        let running = magpie::server::start(config).await.expect("server starts");
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        TestServer { base, backend, client, data_dir: dir.path().to_path_buf(), database_url, running: Some(running), _dir: dir, pg }
    }

    pub fn state(&self) -> &magpie::state::SharedState {
        &self.running.as_ref().expect("running").state
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Response {
        let r = req.send().await.expect("request sent");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response { status, headers, body, text }
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.authed(self.client.get(self.url(path)))).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send(self.authed(self.client.post(self.url(path)).json(&body))).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.send(self.authed(self.client.patch(self.url(path)).json(&body))).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.send(self.authed(self.client.put(self.url(path)).json(&body))).await
    }
    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.authed(self.client.delete(self.url(path)))).await
    }
    /// A request with a raw body and content type.
    pub async fn raw(&self, method: reqwest::Method, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Response {
        let req = self.client.request(method, self.url(path)).header("content-type", content_type).body(body);
        self.send(self.authed(req)).await
    }

    /// Creates a contact through the API and returns its id.
    pub async fn create_contact(&self, body: Value) -> i64 {
        let r = self.post("/api/contacts/new", body).await;
        assert!(r.status.is_success(), "create failed: {}", r.text);
        r.body["contact"]["id"].as_i64().expect("id")
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

/// The path of the test build of the `magpie` binary (only integration tests know it).
#[macro_export]
macro_rules! magpie_binary {
    () => {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_magpie-test-server"))
    };
}
