//! What every request shares.

use std::sync::Arc;

use crate::config::{Config, UniqueIdentifierOperator};
use crate::contacts::fields::FieldSet;
use crate::contacts::registry::FieldRegistry;
use crate::error::AppResult;
use crate::store::{self, Exec, Store};
use crate::users::CredentialCache;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub fields: FieldRegistry,
    pub credentials: CredentialCache,
    /// Timeline event types and their rendering (fed by the plugins).
    pub events: Arc<crate::timeline::types::Catalogue>,
    /// The WebAssembly plugins (loaded by `server::prepare`).
    pub plugins: Arc<crate::plugins::Plugins>,
    /// The web admin's in-memory helpers (login throttling); safe to lose.
    pub web: crate::web::WebState,
    /// The tracking write path (group commit of hits).
    pub tracker: crate::tracking::Tracker,
    /// Key of the signed click-through tokens, shared by every process through the database.
    pub tracking_secret: Vec<u8>,
    /// Background jobs: this process's lease owner id and the bell for new work.
    pub jobs: crate::jobs::Jobs,
    /// The group commit of contact saves (SQLite).
    pub saves: crate::contacts::save_group::SaveGroups,
}

pub type SharedState = Arc<AppState>;

/// Settings key of the unique-identifier operator chosen in the admin (overrides the file).
pub const OPERATOR_SETTING: &str = "contacts.unique_identifier_operator";

impl AppState {
    /// The state with no plugin loaded yet (`Plugins::start` loads them).
    pub fn new(config: Config, store: Store, tracking_secret: Vec<u8>) -> anyhow::Result<AppState> {
        let limits = crate::plugins::Limits::from_config(&config.file.plugins);
        let plugins = Arc::new(crate::plugins::Plugins::new(
            &config.data_dir,
            limits,
            store.clone(),
        )?);
        Ok(AppState {
            config,
            store,
            fields: FieldRegistry::default(),
            credentials: CredentialCache::default(),
            events: Default::default(),
            plugins,
            tracker: Default::default(),
            tracking_secret,
            jobs: Default::default(),
            saves: Default::default(),
            web: Default::default(),
        })
    }

    /// The client's address for a request from `peer`, through the proxies
    /// `[server] trusted_proxies` names (`tracking::ip::client_of`).
    pub fn client_ip(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        let proxies = self.config.file.server.trusted_proxies.as_deref();
        crate::tracking::ip::client_of(peer, headers, proxies)
    }

    pub async fn fields(&self, db: &mut impl Exec) -> AppResult<Arc<FieldSet>> {
        Ok(self.fields.current(db).await?)
    }

    /// The AND/OR rule for unique identifiers: the admin's setting, else the config file.
    pub async fn operator(&self, db: &mut impl Exec) -> AppResult<UniqueIdentifierOperator> {
        Ok(
            match store::settings::get(db, OPERATOR_SETTING).await?.as_deref() {
                Some("or") => UniqueIdentifierOperator::Or,
                Some("and") => UniqueIdentifierOperator::And,
                _ => self.config.file.contacts.unique_identifier_operator,
            },
        )
    }
}
