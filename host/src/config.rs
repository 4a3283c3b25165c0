//! Configuration: command line, then `MAGPIE_*` environment variables (clap reads both),
//! then the optional `magpie.toml`. CONTRACT.md §1 and §4.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(
    name = "magpie",
    version,
    about = "Contact management and website tracking server"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(CommonArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add(UserAddArgs),
}

#[derive(Args, Debug)]
pub struct UserAddArgs {
    #[arg(long)]
    pub username: String,
    #[arg(long, value_enum, default_value = "user")]
    pub role: RoleArg,
    /// Read the password from the first line of standard input.
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[arg(long, default_value = "")]
    pub email: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RoleArg {
    Admin,
    User,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Directory for the database, uploads, exports and plugins.
    #[arg(long, env = "MAGPIE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`; default `sqlite://<data-dir>/magpie.db`.
    #[arg(long, env = "MAGPIE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Path of the TOML configuration file.
    #[arg(long, env = "MAGPIE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on: `IP:PORT` or `HOST:PORT` (`localhost:8080`). Read as text and
    /// resolved by `serve` alone, so a bad `MAGPIE_LISTEN` does not break other commands.
    #[arg(long, env = "MAGPIE_LISTEN")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Everything the server needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub file: FileConfig,
    /// Password for the `admin` user created on first start (`MAGPIE_ADMIN_PASSWORD`).
    pub admin_password: Option<String>,
}

/// `magpie.toml`. Unknown keys are errors: a typo must not silently do nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub server: ServerConfig,
    pub tracking: TrackingConfig,
    pub contacts: ContactsConfig,
    pub smtp: Option<SmtpConfig>,
    pub api: ApiConfig,
    pub import: ImportConfig,
    pub export: ExportConfig,
    pub jobs: JobsConfig,
    pub plugins: PluginsConfig,
}

/// `[plugins]`: the sandbox's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Deadline of one plugin call, in milliseconds.
    pub call_timeout_ms: u64,
    /// Deadline of loading a plugin (`describe`, `event-types`).
    pub load_timeout_ms: u64,
    /// Memory of one plugin instance, in MiB.
    pub memory_limit_mb: u64,
    /// Failures in a row after which a plugin is disabled.
    pub max_consecutive_failures: u32,
    /// Largest response body of a plugin's outbound HTTP request.
    pub max_http_response_bytes: usize,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            call_timeout_ms: 1000,
            load_timeout_ms: 5000,
            memory_limit_mb: 64,
            max_consecutive_failures: 5,
            max_http_response_bytes: 4 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    pub track_private_ip_ranges: bool,
    pub cors_allowed_origins: Vec<String>,
    pub identify_by_tracking_url: bool,
    pub anonymize_ip: bool,
    /// Parsed as the file is read, so a mistyped block is an error at start.
    pub do_not_track_ips: Vec<crate::tracking::ip::Block>,
    pub honor_do_not_track: bool,
    /// During a burst of hits faster than the applier records them, it steps aside for up
    /// to this long (the hits wait, durable, in the journal); 0: it never steps aside.
    pub apply_lag_seconds: u64,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            track_private_ip_ranges: false,
            cors_allowed_origins: Vec::new(),
            identify_by_tracking_url: false,
            anonymize_ip: false,
            do_not_track_ips: Vec::new(),
            honor_do_not_track: false,
            apply_lag_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UniqueIdentifierOperator {
    #[default]
    And,
    Or,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContactsConfig {
    pub unique_identifier_operator: UniqueIdentifierOperator,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub url: String,
    pub from: String,
}

/// Without the URL's password: a configuration printed for debugging shows no secret.
impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &crate::mail::redacted(&self.url))
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Most items a batch request may carry (Mautic's `api_batch_max_limit`).
    pub batch_limit: usize,
    /// Largest request body accepted by the JSON API, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            batch_limit: 200,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// `[import]`: CSV imports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// Largest file accepted for upload, in bytes (streamed to disk, never held in memory).
    pub max_upload_bytes: u64,
    /// Rows written per transaction (and per checkpoint).
    pub batch_rows: usize,
    /// Longest record (one CSV row) in bytes; a longer row fails on its own.
    pub max_record_bytes: usize,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            batch_rows: 2000,
            max_record_bytes: 1024 * 1024,
        }
    }
}

/// `[server]`: the HTTP server itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// After SIGTERM or SIGINT, requests in flight get this long to finish; then they are
    /// not waited for any more (a client that never sends the rest of its body must not
    /// keep the server from stopping). The background writers are flushed either way.
    pub shutdown_grace_seconds: u64,
    /// A client has this long to send a request's headers; a keep-alive connection idle
    /// this long is closed. Bounds what a client that trickles headers can hold.
    pub header_timeout_seconds: u64,
    /// The proxies whose `X-Forwarded-For` names the client (for tracking, the login
    /// limits, form posts): addresses or CIDR blocks. Absent: any private address, as
    /// a proxy in front of Magpie usually is; `[]`: the header is never read.
    pub trusted_proxies: Option<Vec<crate::tracking::ip::Block>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_grace_seconds: 30,
            header_timeout_seconds: 20,
            trusted_proxies: None,
        }
    }
}

/// The longest `[export] link_ttl_hours`: ten years.
pub const MAX_LINK_TTL_HOURS: u64 = 10 * 366 * 24;

/// `[export]`: exports and their download links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// How long an emailed download link works.
    pub link_ttl_hours: u64,
    /// The address users reach Magpie at, for links in emails (default: `http://<listen>`).
    pub public_url: Option<String>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            link_ttl_hours: 7 * 24,
            public_url: None,
        }
    }
}

/// `[jobs]`: the background job runner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs run at once by this process; 0 for a process that only serves HTTP while
    /// others (sharing its PostgreSQL database) run the jobs.
    pub workers: usize,
    /// A claimed job is taken over by another process when its owner has not renewed the
    /// lease for this long (its process died).
    pub lease_seconds: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: 2,
            lease_seconds: 30,
        }
    }
}

impl Config {
    /// `IP:PORT`, or `HOST:PORT` resolved to its first address.
    pub fn listen_address(listen: &str) -> anyhow::Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        let bad = |why: String| {
            anyhow::anyhow!("--listen {listen}: {why} (expected IP:PORT or HOST:PORT)")
        };
        listen
            .to_socket_addrs()
            .map_err(|e| bad(e.to_string()))?
            .next()
            .ok_or_else(|| bad("the host has no address".into()))
    }

    pub fn resolve(listen: Option<SocketAddr>, common: &CommonArgs) -> anyhow::Result<Config> {
        let data_dir = common
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./magpie-data"));
        let database_url = common
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("magpie.db").display()));
        let file = match &common.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Ok(Config {
            listen: listen.unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid default")),
            data_dir,
            database_url,
            file,
            admin_password: std::env::var("MAGPIE_ADMIN_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty()),
        })
    }

    /// A configuration for tests and tools: everything default under `data_dir`.
    pub fn for_data_dir(data_dir: &Path, database_url: Option<String>) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().expect("valid"),
            data_dir: data_dir.to_path_buf(),
            database_url: database_url
                .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("magpie.db").display())),
            file: FileConfig::default(),
            admin_password: None,
        }
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        FileConfig::parse(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
        let config: FileConfig = toml::from_str(text)?;
        if config.api.batch_limit == 0 {
            anyhow::bail!("api.batch_limit must be at least 1");
        }
        if config.import.batch_rows == 0 || config.import.batch_rows > 50_000 {
            anyhow::bail!("import.batch_rows must be from 1 to 50000");
        }
        if config.import.max_record_bytes < 1024 {
            anyhow::bail!("import.max_record_bytes must be at least 1024");
        }
        if !(1..=3600).contains(&config.server.header_timeout_seconds) {
            anyhow::bail!("server.header_timeout_seconds must be from 1 to 3600");
        }
        if config.jobs.lease_seconds == 0 {
            anyhow::bail!("jobs.lease_seconds must be at least 1");
        }
        // A link must outlive its email, and its expiry must fit the clock's milliseconds.
        if !(1..=MAX_LINK_TTL_HOURS).contains(&config.export.link_ttl_hours) {
            anyhow::bail!("export.link_ttl_hours must be from 1 to {MAX_LINK_TTL_HOURS}");
        }
        // A mistyped origin would silently track what it was meant to exclude.
        for origin in &config.tracking.cors_allowed_origins {
            crate::http::tracking::check_origin_pattern(origin)
                .map_err(|e| anyhow::anyhow!("tracking.cors_allowed_origins: {e}"))?;
        }
        // A mistyped relay is said at start, not when the first export's email fails.
        if let Some(smtp) = &config.smtp {
            crate::mail::check(smtp)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_example() {
        let config = FileConfig::parse(
            r#"
            [tracking]
            track_private_ip_ranges = false
            cors_allowed_origins = []
            identify_by_tracking_url = false
            anonymize_ip = false

            [contacts]
            unique_identifier_operator = "or"

            [smtp]
            url = "smtp://127.0.0.1:2525"
            from = "magpie@example.com"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.contacts.unique_identifier_operator,
            UniqueIdentifierOperator::Or
        );
        assert_eq!(config.smtp.unwrap().from, "magpie@example.com");
    }

    #[test]
    fn listen_addresses_may_name_a_host() {
        assert_eq!(
            Config::listen_address("127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert!(
            Config::listen_address("localhost:8080")
                .unwrap()
                .ip()
                .is_loopback()
        );
        for bad in ["nonsense", "127.0.0.1:99999", "localhost"] {
            assert!(Config::listen_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(FileConfig::parse("[tracking]\ntrack_private = true").is_err());
        assert!(FileConfig::parse("[contacts]\nunique_identifier_operator = \"xor\"").is_err());
        assert!(FileConfig::parse("[nope]").is_err());
        assert!(FileConfig::parse("").is_ok());
        // Addresses and origins that would match nothing are refused, not ignored.
        for bad in [
            "[tracking]\ndo_not_track_ips = [\"127.0.0.0/33\"]",
            "[tracking]\ndo_not_track_ips = [\"10.*.0.1\"]",
            "[tracking]\ncors_allowed_origins = [\"not a url\"]",
            "[tracking]\ncors_allowed_origins = [\"https://example.com/path\"]",
            "[server]\ntrusted_proxies = [\"10.0.0.0/40\"]",
            "[server]\ntrusted_proxies = \"10.0.0.1\"",
        ] {
            assert!(FileConfig::parse(bad).is_err(), "{bad}");
        }
        let good = FileConfig::parse(
            "[tracking]\ndo_not_track_ips = [\"192.0.2.1\", \"10.0.0.0/8\", \"127.0.0.*\"]\ncors_allowed_origins = [\"https://*.example.com\", \"http://localhost:3000\", \"*\", \"*://example.org\"]",
        );
        assert!(good.is_ok(), "{good:?}");
        let proxies = FileConfig::parse("[server]\ntrusted_proxies = [\"10.0.0.5\", \"fd00::/8\"]")
            .unwrap()
            .server
            .trusted_proxies
            .unwrap();
        assert_eq!(proxies.len(), 2);
        assert!(proxies[1].contains(&"fd12::1".parse().unwrap()));
        assert_eq!(FileConfig::parse("").unwrap().server.trusted_proxies, None);
    }
}
