//! Storage. The only place that writes SQL: `db` is the portable layer over sqlx, each
//! other file owns the statements for one part of the schema.

mod db;
pub mod migrate;

pub mod companies;
pub mod contact_search;
pub mod contacts;
pub mod entity_list;
pub mod events;
pub mod exports;
pub mod fields;
pub mod fold;
pub mod forms;
pub mod free_text;
pub mod imports;
pub mod jobs;
pub mod locks;
pub mod merge;
pub mod notes;
pub mod plugins;
pub mod sessions;
pub mod settings;
pub mod stages;
pub mod tags;
pub mod tracking;
pub mod users;

pub use db::{Backend, Conn, DbResult, Exec, Kind, Params, Row, Store, Tx, Value};

/// A migrated SQLite store in a new temporary directory, for unit tests; the directory
/// must outlive the store.
#[cfg(test)]
pub async fn scratch_sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/magpie.db", dir.path().display()))
        .await
        .unwrap();
    migrate::run(&store).await.unwrap();
    (dir, store)
}
