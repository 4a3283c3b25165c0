//! The thin portable layer over sqlx: one `Store` for SQLite or PostgreSQL, values and
//! rows that look the same on both, and an `Exec` trait so every query function in
//! `store/` is written once.
//!
//! Statements use `$1, $2 …` placeholders, which both drivers bind by number. Where the
//! dialects differ (upserts, case-insensitive matching, DDL) the query functions ask
//! `Exec::backend()` and pick the text.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column, Postgres, Row as _, Sqlite, Transaction, TypeInfo, ValueRef,
};

use crate::waiting::Waiting;

pub type DbResult<T> = Result<T, sqlx::Error>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The SQL function that case-folds text alike on both databases: PostgreSQL's
    /// `lower()`, SQLite's `fold()` (its own `lower()` folds ASCII only; `store::fold`).
    pub fn fold_fn(self) -> &'static str {
        match self {
            Backend::Sqlite => "fold",
            Backend::Postgres => "lower",
        }
    }

    /// Appended to a text expression so it compares byte by byte, as SQLite's texts do
    /// (PostgreSQL would follow the database's locale).
    pub fn bytewise(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " COLLATE \"C\"",
        }
    }
}

/// The SQL type of a value; PostgreSQL needs it even for NULLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Text,
}

/// A bound parameter or a decoded column. Booleans are integers 0/1 and timestamps are
/// integer milliseconds on both backends, so these four cases are all the schema uses.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null(_))
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) => Some(*f as i64),
            Value::Text(s) => s.parse().ok(),
            Value::Null(_) => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Text(s) => s.parse().ok(),
            Value::Null(_) => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    /// Text of any non-null value (numbers formatted).
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Null(_) => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null(Kind::Int), Value::Int)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::Null(Kind::Text), Value::Text)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Value::Null(Kind::Text), |s| Value::Text(s.to_owned()))
    }
}

/// Builds a parameter list: `params![a, b, c]`.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => { vec![$($crate::store::Value::from($v)),*] };
}

/// A decoded row: column names shared by all rows of a result.
#[derive(Clone, Debug)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub fn columns(&self) -> &[String] {
        &self.columns
    }
    pub fn values(&self) -> &[Value] {
        &self.values
    }
    pub fn get(&self, column: &str) -> &Value {
        static NULL: Value = Value::Null(Kind::Text);
        self.columns
            .iter()
            .position(|c| c == column)
            .map_or(&NULL, |i| &self.values[i])
    }
    pub fn at(&self, index: usize) -> &Value {
        &self.values[index]
    }
    pub fn i64(&self, column: &str) -> i64 {
        self.get(column).as_i64().unwrap_or(0)
    }
    pub fn opt_i64(&self, column: &str) -> Option<i64> {
        self.get(column).as_i64()
    }
    pub fn bool(&self, column: &str) -> bool {
        self.i64(column) != 0
    }
    pub fn text(&self, column: &str) -> String {
        self.get(column).to_text().unwrap_or_default()
    }
    pub fn opt_text(&self, column: &str) -> Option<String> {
        self.get(column).to_text()
    }
}

/// Runs statements on a connection or inside a transaction, on either backend.
pub trait Exec: Send {
    fn backend(&self) -> Backend;
    fn execute(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = DbResult<u64>> + Send;
    fn fetch_all(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = DbResult<Vec<Row>>> + Send;
    /// As `fetch_all`, planned for these very values: PostgreSQL would otherwise switch a
    /// prepared search to a generic plan after a few runs, and a generic plan cannot
    /// tell a prefix matching 26 rows from one matching 90,000.
    fn fetch_all_planned(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = DbResult<Vec<Row>>> + Send;
    /// Runs several statements without parameters (DDL, migrations).
    fn execute_script(&mut self, sql: &str) -> impl Future<Output = DbResult<()>> + Send;

    fn fetch_optional(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = DbResult<Option<Row>>> + Send {
        async move { Ok(self.fetch_all(sql, params).await?.into_iter().next()) }
    }
    /// The first column of the first row as an integer (COUNT, RETURNING id …).
    fn fetch_i64(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = DbResult<Option<i64>>> + Send {
        async move {
            Ok(self
                .fetch_all(sql, params)
                .await?
                .first()
                .and_then(|r| r.values.first().and_then(Value::as_i64)))
        }
    }
    /// The ids of a multi-row `INSERT … RETURNING id`, in the order of its `VALUES`: both
    /// databases assign them in that order, but RETURNING does not promise to answer so.
    fn inserted_ids(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = DbResult<Vec<i64>>> + Send {
        async move {
            let mut ids: Vec<i64> = self
                .fetch_all(sql, params)
                .await?
                .iter()
                .filter_map(|r| r.values.first().and_then(Value::as_i64))
                .collect();
            ids.sort_unstable();
            Ok(ids)
        }
    }
}

/// A SQLite pool of up to `max_connections`, one kept open, where a caller waits up to
/// 30 s for a connection. Each connection gets `fold()` (`store::fold`).
fn sqlite_pool(max_connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| Box::pin(register_fold(conn)))
}

async fn register_fold(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is locked for us: no statement runs on it meanwhile.
    let rc = unsafe { super::fold::register(handle.as_raw_handle().as_ptr()) };
    if rc != libsqlite3_sys::SQLITE_OK {
        return Err(sqlx::Error::Protocol(format!(
            "cannot register fold() (SQLite error {rc})"
        )));
    }
    Ok(())
}

/// Attaches the database `file` as `schema` on every connection the pool opens, then
/// runs `pragmas` (for that schema).
fn attach_on_connect(
    pool: SqlitePoolOptions,
    file: String,
    schema: &'static str,
    pragmas: &'static str,
) -> SqlitePoolOptions {
    pool.after_connect(move |conn, _| {
        let file = file.clone();
        Box::pin(async move {
            register_fold(conn).await?;
            sqlx::query(AssertSqlSafe(format!("ATTACH DATABASE $1 AS {schema}")))
                .bind(file)
                .execute(&mut *conn)
                .await?;
            if !pragmas.is_empty() {
                sqlx::raw_sql(pragmas).execute(&mut *conn).await?;
            }
            Ok(())
        })
    })
}

enum Pools {
    /// `checkpoint`: one connection that copies the WAL into the database file in the
    /// background (see `Store::spawn_checkpointer`). `free_text`: the one writer of the
    /// free-text index's own file (see `store::free_text`).
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        checkpoint: SqlitePool,
        free_text: SqlitePool,
    },
    Postgres(PgPool),
}

/// The database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    pools: Arc<Pools>,
    /// SQLite: how many tasks wait for the one writer connection (see `writers_waiting`).
    waiting: Arc<AtomicUsize>,
}

impl Store {
    /// Opens `sqlite://path` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        let pools = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            // One connection first, so a refused connection or an unknown role says so
            // (the pool would only say it timed out), naming the server but no password.
            {
                use sqlx::Connection;
                let server = format!("{}:{}", options.get_host(), options.get_port());
                let conn = sqlx::PgConnection::connect_with(&options)
                    .await
                    .map_err(|e| {
                        let why = match &e {
                            sqlx::Error::Database(d) => d.message().to_owned(),
                            other => other.to_string(),
                        };
                        anyhow::anyhow!("cannot connect to PostgreSQL at {server}: {why}")
                    })?;
                conn.close().await.ok();
            }
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Pools::Postgres(pool)
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)?;
            }
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit that was acknowledged survives a power cut, not only a crash.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .statement_cache_capacity(256)
                .pragma("cache_size", "-65536")
                .pragma("temp_store", "memory")
                .pragma("mmap_size", "268435456");
            // One writer: SQLite serialises writers anyway, and queueing them in the pool
            // instead of in busy-wait loops keeps latency flat. Readers run in parallel (WAL).
            // The writer leaves checkpoints to `spawn_checkpointer`'s connection: copying
            // the WAL into the database (and its fsync) then runs beside the writer, not
            // inside its commits. A large threshold stays as a backstop.
            let write = sqlite_pool(1)
                .connect_with(options.clone().pragma("wal_autocheckpoint", "16384"))
                .await?;
            let checkpoint = sqlite_pool(1)
                .min_connections(0)
                .connect_with(options.clone())
                .await?;
            // The free-text index lives in a file of its own with a writer of its own
            // (`free_text`), so indexing runs beside the main writer instead of taking
            // turns with it. It sees the main database read-only, as `magpie`; readers
            // see the index as `free_text`. It is opened (created) before the readers
            // attach it; `free_text::prepare` creates its tables.
            let index_path = super::free_text::index_path(path);
            let main_uri = super::free_text::read_only_uri(path);
            let free_text = attach_on_connect(sqlite_pool(1), main_uri, "magpie", "")
                .connect_with(options.clone().filename(&index_path))
                .await?;
            let read = attach_on_connect(
                sqlite_pool(8),
                index_path,
                "free_text",
                "PRAGMA free_text.cache_size = -32768; PRAGMA free_text.mmap_size = 268435456",
            )
            .connect_with(options.read_only(true))
            .await?;
            Pools::Sqlite {
                read,
                write,
                checkpoint,
                free_text,
            }
        } else {
            anyhow::bail!("unsupported database URL (expected sqlite://… or postgres://…)");
        };
        Ok(Store {
            pools: Arc::new(pools),
            waiting: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn backend(&self) -> Backend {
        match &*self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// A connection for reading. On SQLite it cannot write.
    pub async fn read(&self) -> DbResult<Conn> {
        Ok(Conn(match &*self.pools {
            Pools::Sqlite { read, .. } => ConnInner::Sqlite(read.acquire().await?),
            Pools::Postgres(pool) => ConnInner::Postgres(pool.acquire().await?),
        }))
    }

    /// SQLite: how many tasks are waiting for the writer right now, so that a long piece
    /// of work holding it (an import) can commit and step aside. Always 0 on PostgreSQL,
    /// whose writers do not wait for each other.
    pub fn writers_waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A connection that may write outside a transaction (DDL that cannot run in one).
    pub async fn write_conn(&self) -> DbResult<Conn> {
        Ok(Conn(match &*self.pools {
            Pools::Sqlite { write, .. } => {
                let _waiting = Waiting::new(&self.waiting);
                ConnInner::Sqlite(write.acquire().await?)
            }
            Pools::Postgres(pool) => ConnInner::Postgres(pool.acquire().await?),
        }))
    }

    /// Starts a write transaction. Nothing is visible to others until `commit`; dropping
    /// it rolls back.
    pub async fn begin(&self) -> DbResult<Tx> {
        Ok(Tx(match &*self.pools {
            Pools::Sqlite { write, .. } => {
                let _waiting = Waiting::new(&self.waiting);
                TxInner::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?)
            }
            Pools::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        }))
    }

    /// SQLite: a transaction on the free-text index's writer (`store::free_text`), which
    /// writes only the index's file and reads the main database, as `magpie`, in one
    /// snapshot. `None` on PostgreSQL.
    pub async fn begin_free_text(&self) -> DbResult<Option<Tx>> {
        Ok(match &*self.pools {
            // Deferred: it takes the index file's write lock at its first write, and
            // only ever reads the main database (attached read-only).
            Pools::Sqlite { free_text, .. } => {
                Some(Tx(TxInner::Sqlite(free_text.begin_with("BEGIN").await?)))
            }
            Pools::Postgres(_) => None,
        })
    }

    /// Reads that must agree with each other: every statement sees the database as the
    /// first one did (SQLite: a read transaction on a reader; PostgreSQL: `REPEATABLE
    /// READ`, read only). Dropping it ends it; it cannot write.
    pub async fn snapshot(&self) -> DbResult<Tx> {
        Ok(Tx(match &*self.pools {
            Pools::Sqlite { read, .. } => TxInner::Sqlite(read.begin_with("BEGIN").await?),
            Pools::Postgres(pool) => TxInner::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        }))
    }

    /// SQLite: checkpoints the WAL every quarter second on a connection of its own
    /// (`PASSIVE`: never waits for, nor blocks, the writer or readers), until `stop`.
    pub fn spawn_checkpointer(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let Pools::Sqlite { checkpoint, .. } = &*self.pools else {
            return None;
        };
        let pool = checkpoint.clone();
        Some(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let started = std::time::Instant::now();
                match sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    Err(e) => tracing::debug!(error = %e, "background checkpoint skipped"),
                    // Long checkpoints share the disk with every commit's fsync.
                    Ok(_) if started.elapsed() > Duration::from_millis(100) => {
                        tracing::debug!(
                            ms = started.elapsed().as_millis() as u64,
                            "slow background checkpoint"
                        );
                    }
                    Ok(_) => {}
                }
            }
        }))
    }

    pub async fn close(&self) {
        match &*self.pools {
            Pools::Sqlite {
                read,
                write,
                checkpoint,
                free_text,
            } => {
                read.close().await;
                checkpoint.close().await;
                if let Ok(mut conn) = free_text.acquire().await {
                    let _ = sqlx::raw_sql("PRAGMA main.wal_checkpoint(TRUNCATE)")
                        .execute(&mut *conn)
                        .await;
                }
                free_text.close().await;
                // A final checkpoint keeps the WAL file from outliving the process.
                if let Ok(mut conn) = write.acquire().await {
                    let _ = sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                        .execute(&mut *conn)
                        .await;
                }
                write.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

enum ConnInner {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// A pooled connection.
pub struct Conn(ConnInner);

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A write transaction (`Store::begin`), or a read-only snapshot (`Store::snapshot`).
pub struct Tx(TxInner);

impl Tx {
    pub async fn commit(self) -> DbResult<()> {
        match self.0 {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => tx.commit().await,
        }
    }
}

fn sqlite_args(params: Vec<Value>) -> DbResult<SqliteArguments> {
    let mut args = SqliteArguments::default();
    for p in params {
        let r = match p {
            Value::Null(_) => args.add(None::<i64>),
            Value::Int(i) => args.add(i),
            Value::Float(f) => args.add(f),
            Value::Text(s) => args.add(s),
        };
        r.map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

fn pg_args(params: Vec<Value>) -> DbResult<PgArguments> {
    let mut args = PgArguments::default();
    for p in params {
        let r = match p {
            Value::Null(Kind::Int) => args.add(None::<i64>),
            Value::Null(Kind::Float) => args.add(None::<f64>),
            Value::Null(Kind::Text) => args.add(None::<String>),
            Value::Int(i) => args.add(i),
            Value::Float(f) => args.add(f),
            Value::Text(s) => args.add(s),
        };
        r.map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

fn decode_sqlite(rows: Vec<SqliteRow>) -> DbResult<Vec<Row>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    rows.iter()
        .map(|row| {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let raw = row.try_get_raw(i)?;
                let value = if raw.is_null() {
                    Value::Null(Kind::Text)
                } else {
                    let type_info = raw.type_info();
                    match type_info.name() {
                        "INTEGER" | "BOOLEAN" | "INT8" | "BIGINT" => {
                            Value::Int(row.try_get_unchecked(i)?)
                        }
                        "REAL" | "DOUBLE" | "FLOAT" => Value::Float(row.try_get_unchecked(i)?),
                        "BLOB" => {
                            let bytes: Vec<u8> = row.try_get_unchecked(i)?;
                            Value::Text(String::from_utf8_lossy(&bytes).into_owned())
                        }
                        _ => Value::Text(row.try_get_unchecked(i)?),
                    }
                };
                values.push(value);
            }
            Ok(Row {
                columns: columns.clone(),
                values,
            })
        })
        .collect()
}

fn decode_pg(rows: Vec<PgRow>) -> DbResult<Vec<Row>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let types: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.type_info().name().to_owned())
        .collect();
    rows.iter()
        .map(|row| {
            let mut values = Vec::with_capacity(columns.len());
            for (i, ty) in types.iter().enumerate() {
                let value = match ty.as_str() {
                    "INT8" => row
                        .try_get::<Option<i64>, _>(i)?
                        .map_or(Value::Null(Kind::Int), Value::Int),
                    "INT4" => row
                        .try_get::<Option<i32>, _>(i)?
                        .map_or(Value::Null(Kind::Int), |v| Value::Int(v.into())),
                    "INT2" => row
                        .try_get::<Option<i16>, _>(i)?
                        .map_or(Value::Null(Kind::Int), |v| Value::Int(v.into())),
                    "BOOL" => row
                        .try_get::<Option<bool>, _>(i)?
                        .map_or(Value::Null(Kind::Int), |v| Value::Int(v.into())),
                    "FLOAT8" => row
                        .try_get::<Option<f64>, _>(i)?
                        .map_or(Value::Null(Kind::Float), Value::Float),
                    "FLOAT4" => row
                        .try_get::<Option<f32>, _>(i)?
                        .map_or(Value::Null(Kind::Float), |v| Value::Float(v.into())),
                    "VOID" => Value::Null(Kind::Text),
                    _ => row
                        .try_get::<Option<String>, _>(i)?
                        .map_or(Value::Null(Kind::Text), Value::Text),
                };
                values.push(value);
            }
            Ok(Row {
                columns: columns.clone(),
                values,
            })
        })
        .collect()
}

/// Rewrites `$n` placeholders to anonymous `?` ones, reordering (and repeating) the values
/// to match. SQLite looks named parameters up by linear scans, at parse and at bind time,
/// which makes a 4,000-value multi-row INSERT quadratic; anonymous ones cost nothing.
/// A value is moved to its last use and copied only for the uses before it.
pub(super) fn sqlite_positional(sql: &str, params: Vec<Value>) -> (String, Vec<Value>) {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut order: Vec<usize> = Vec::with_capacity(params.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                // Skip a quoted literal or identifier ('' and "" escape themselves).
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let n: usize = sql[start + 1..i].parse().unwrap_or(0);
                out.push_str(&sql[copied..start]);
                out.push('?');
                copied = i;
                order.push(n.wrapping_sub(1));
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    let mut uses_left = vec![0usize; params.len()];
    for &at in &order {
        if let Some(n) = uses_left.get_mut(at) {
            *n += 1;
        }
    }
    let mut slots: Vec<Option<Value>> = params.into_iter().map(Some).collect();
    let values = order
        .into_iter()
        .map(|at| {
            let value = uses_left.get_mut(at).and_then(|left| {
                *left -= 1; // counted above, so at least 1
                if *left == 0 {
                    slots[at].take()
                } else {
                    slots[at].clone()
                }
            });
            value.unwrap_or(Value::Null(Kind::Text))
        })
        .collect();
    (out, values)
}

async fn sqlite_execute(
    conn: &mut sqlx::SqliteConnection,
    sql: &str,
    params: Vec<Value>,
) -> DbResult<u64> {
    let (sql, params) = sqlite_positional(sql, params);
    let args = sqlite_args(params)?;
    Ok(sqlx::query_with(AssertSqlSafe(sql), args)
        .execute(conn)
        .await?
        .rows_affected())
}
async fn sqlite_fetch(
    conn: &mut sqlx::SqliteConnection,
    sql: &str,
    params: Vec<Value>,
) -> DbResult<Vec<Row>> {
    let (sql, params) = sqlite_positional(sql, params);
    let args = sqlite_args(params)?;
    decode_sqlite(
        sqlx::query_with(AssertSqlSafe(sql), args)
            .fetch_all(conn)
            .await?,
    )
}
async fn pg_execute(conn: &mut sqlx::PgConnection, sql: &str, params: Vec<Value>) -> DbResult<u64> {
    let args = pg_args(params)?;
    Ok(sqlx::query_with(AssertSqlSafe(sql), args)
        .execute(conn)
        .await?
        .rows_affected())
}
async fn pg_fetch_planned(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    params: Vec<Value>,
) -> DbResult<Vec<Row>> {
    let args = pg_args(params)?;
    decode_pg(
        sqlx::query_with(AssertSqlSafe(sql), args)
            .persistent(false)
            .fetch_all(conn)
            .await?,
    )
}
async fn pg_fetch(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    params: Vec<Value>,
) -> DbResult<Vec<Row>> {
    let args = pg_args(params)?;
    decode_pg(
        sqlx::query_with(AssertSqlSafe(sql), args)
            .fetch_all(conn)
            .await?,
    )
}

impl Exec for Conn {
    fn backend(&self) -> Backend {
        match self.0 {
            ConnInner::Sqlite(_) => Backend::Sqlite,
            ConnInner::Postgres(_) => Backend::Postgres,
        }
    }
    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> DbResult<u64> {
        match &mut self.0 {
            ConnInner::Sqlite(c) => sqlite_execute(c, sql, params).await,
            ConnInner::Postgres(c) => pg_execute(c, sql, params).await,
        }
    }
    async fn fetch_all(&mut self, sql: &str, params: Vec<Value>) -> DbResult<Vec<Row>> {
        match &mut self.0 {
            ConnInner::Sqlite(c) => sqlite_fetch(c, sql, params).await,
            ConnInner::Postgres(c) => pg_fetch(c, sql, params).await,
        }
    }
    async fn fetch_all_planned(&mut self, sql: &str, params: Vec<Value>) -> DbResult<Vec<Row>> {
        match &mut self.0 {
            ConnInner::Sqlite(c) => sqlite_fetch(c, sql, params).await,
            ConnInner::Postgres(c) => pg_fetch_planned(c, sql, params).await,
        }
    }
    async fn execute_script(&mut self, sql: &str) -> DbResult<()> {
        match &mut self.0 {
            ConnInner::Sqlite(c) => sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut **c)
                .await
                .map(drop),
            ConnInner::Postgres(c) => sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut **c)
                .await
                .map(drop),
        }
    }
}

impl Exec for Tx {
    fn backend(&self) -> Backend {
        match self.0 {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }
    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> DbResult<u64> {
        match &mut self.0 {
            TxInner::Sqlite(c) => sqlite_execute(c, sql, params).await,
            TxInner::Postgres(c) => pg_execute(c, sql, params).await,
        }
    }
    async fn fetch_all(&mut self, sql: &str, params: Vec<Value>) -> DbResult<Vec<Row>> {
        match &mut self.0 {
            TxInner::Sqlite(c) => sqlite_fetch(c, sql, params).await,
            TxInner::Postgres(c) => pg_fetch(c, sql, params).await,
        }
    }
    async fn fetch_all_planned(&mut self, sql: &str, params: Vec<Value>) -> DbResult<Vec<Row>> {
        match &mut self.0 {
            TxInner::Sqlite(c) => sqlite_fetch(c, sql, params).await,
            TxInner::Postgres(c) => pg_fetch_planned(c, sql, params).await,
        }
    }
    async fn execute_script(&mut self, sql: &str) -> DbResult<()> {
        match &mut self.0 {
            TxInner::Sqlite(c) => sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut **c)
                .await
                .map(drop),
            TxInner::Postgres(c) => sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut **c)
                .await
                .map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statement naming a column that is gone (a field deleted while a request ran) is
    /// a 409 to send again, on SQLite's two spellings; other errors stay internal.
    #[tokio::test]
    async fn a_missing_column_is_a_conflict() {
        use crate::error::AppError;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/magpie.db", dir.path().display()))
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.execute_script("CREATE TABLE t (a INTEGER)")
            .await
            .unwrap();
        for sql in ["SELECT b FROM t", "INSERT INTO t (b) VALUES (1)"] {
            let e = tx.execute(sql, vec![]).await.unwrap_err();
            assert!(matches!(AppError::from(e), AppError::Conflict(_)), "{sql}");
        }
        let e = tx
            .execute("SELECT * FROM nowhere", vec![])
            .await
            .unwrap_err();
        assert!(matches!(AppError::from(e), AppError::Internal(_)));
    }

    /// A long piece of work holding the writer (an import's grouped batches) sees when
    /// another task waits for it, and the count falls back once that task has it or gives
    /// up waiting.
    #[tokio::test]
    async fn writers_waiting_counts_the_tasks_waiting_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/magpie.db", dir.path().display()))
            .await
            .unwrap();
        let held = store.begin().await.unwrap();
        assert_eq!(store.writers_waiting(), 0, "the holder does not count");
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move {
                let tx = store.begin().await.unwrap();
                tx.commit().await.unwrap();
            })
        };
        let conn_waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.write_conn().await.map(drop) })
        };
        while store.writers_waiting() < 2 {
            tokio::task::yield_now().await;
        }
        conn_waiter.abort();
        let _ = conn_waiter.await;
        assert_eq!(
            store.writers_waiting(),
            1,
            "a waiter that gives up is not counted"
        );
        drop(held);
        waiter.await.unwrap();
        assert_eq!(store.writers_waiting(), 0);
    }

    #[test]
    fn positional_rewrite() {
        let (sql, v) = sqlite_positional(
            "SELECT $2, '$1', \"$x\", $1, $2 FROM t WHERE a = 'it''s $3'",
            vec![Value::Int(1), Value::Int(2)],
        );
        assert_eq!(
            sql,
            "SELECT ?, '$1', \"$x\", ?, ? FROM t WHERE a = 'it''s $3'"
        );
        assert_eq!(v, vec![Value::Int(2), Value::Int(1), Value::Int(2)]);
        let (sql, v) = sqlite_positional(
            "INSERT INTO t VALUES ($1, $2), ($3, $4)",
            (1..=4).map(Value::Int).collect(),
        );
        assert_eq!(sql, "INSERT INTO t VALUES (?, ?), (?, ?)");
        assert_eq!(v.len(), 4);
        // A value used twice is copied for the first use and moved to the last; a
        // placeholder with no value binds NULL.
        let text = |t: &str| Value::Text(t.into());
        let (sql, v) = sqlite_positional("SELECT $1, $2, $1, $3", vec![text("a"), text("b")]);
        assert_eq!(sql, "SELECT ?, ?, ?, ?");
        assert_eq!(
            v,
            vec![text("a"), text("b"), text("a"), Value::Null(Kind::Text)]
        );
    }
}

/// `$n` placeholders for a statement being built: `ph.next()` hands out `$1, $2 …` and
/// collects the values.
#[derive(Default)]
pub struct Params {
    pub values: Vec<Value>,
}

impl Params {
    pub fn push(&mut self, v: impl Into<Value>) -> String {
        self.values.push(v.into());
        format!("${}", self.values.len())
    }

    /// `$a, $b, …` for several values (ids, names, or `Value`s).
    pub fn list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> String {
        let mut list = String::new();
        self.write_list(&mut list, values);
        list
    }

    /// Appends `$a, $b, …` for several values to `sql` (no string per placeholder: the
    /// multi-row INSERTs of the write path hand out thousands per statement).
    pub fn write_list<V: Into<Value>>(
        &mut self,
        sql: &mut String,
        values: impl IntoIterator<Item = V>,
    ) {
        use std::fmt::Write;
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            self.values.push(v.into());
            let _ = write!(sql, "${}", self.values.len());
        }
    }
}
