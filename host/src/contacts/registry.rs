//! The field definitions every request needs, cached in memory. The cache is keyed by a
//! version counter in the database, so a change made by any process (several may share
//! one PostgreSQL) is seen on the next request; losing the cache costs one query.

use std::sync::{Arc, RwLock};

use super::fields::FieldSet;
use crate::store::{self, DbResult, Exec};

#[derive(Default)]
pub struct FieldRegistry {
    cached: RwLock<Option<(i64, Arc<FieldSet>)>>,
    /// Shared by exports while they read the columns of the field set they began with;
    /// taken alone by a field's deletion, which so waits for them (in this process).
    columns: Arc<tokio::sync::RwLock<()>>,
}

impl FieldRegistry {
    /// The current field set, reloaded when the version moved.
    pub async fn current(&self, db: &mut impl Exec) -> DbResult<Arc<FieldSet>> {
        let version = store::fields::version(db).await?;
        if let Some((v, set)) = self.cached.read().expect("field cache poisoned").as_ref()
            && *v == version
        {
            return Ok(set.clone());
        }
        let set = Arc::new(FieldSet::new(store::fields::list(db).await?));
        *self.cached.write().expect("field cache poisoned") = Some((version, set.clone()));
        Ok(set)
    }

    /// Keeps every field's column in place until dropped (see `columns`).
    pub async fn reading_columns(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.columns.clone().read_owned().await
    }

    /// Waits for the exports reading columns; new ones wait for the guard's drop.
    pub async fn dropping_columns(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.columns.clone().write_owned().await
    }

    /// Forgets the cache (after a change in this process, to skip the race window).
    pub fn invalidate(&self) {
        *self.cached.write().expect("field cache poisoned") = None;
    }
}
