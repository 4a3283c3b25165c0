//! `host.storage-*`: each plugin's private key-value storage (no capability needed;
//! keys are scoped by the plugin's name, so no plugin sees another's).

use super::{Error, Sandbox, block_on, internal};
use crate::store;
use crate::time::now_ms;

const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 64 * 1024;
const MAX_KEYS: i64 = 10_000;

fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::InvalidInput(format!(
            "storage keys are 1 to {MAX_KEY} bytes"
        )));
    }
    Ok(())
}

pub fn get(s: &Sandbox, key: &str) -> Result<Option<String>, Error> {
    check_key(key)?;
    let (state, rt) = s.server()?;
    block_on(&rt, async {
        let mut db = state.store.read().await?;
        store::plugins::kv_get(&mut db, &s.call.plugin, key).await
    })
    .map_err(internal)
}

pub fn set(s: &Sandbox, key: &str, value: &str) -> Result<(), Error> {
    check_key(key)?;
    if value.len() > MAX_VALUE {
        return Err(Error::InvalidInput(format!(
            "storage values are at most {MAX_VALUE} bytes"
        )));
    }
    let (state, rt) = s.server()?;
    let plugin = &s.call.plugin;
    block_on(&rt, async {
        let mut tx = state.store.begin().await?;
        if store::plugins::kv_get(&mut tx, plugin, key)
            .await?
            .is_none()
            && store::plugins::kv_count(&mut tx, plugin).await? >= MAX_KEYS
        {
            return Ok(Err(Error::Denied(format!(
                "the plugin's storage is full ({MAX_KEYS} keys)"
            ))));
        }
        store::plugins::kv_set(&mut tx, plugin, key, value, now_ms()).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Ok(()))
    })
    .map_err(internal)?
}

pub fn delete(s: &Sandbox, key: &str) -> Result<(), Error> {
    check_key(key)?;
    let (state, rt) = s.server()?;
    block_on(&rt, async {
        let mut tx = state.store.begin().await?;
        store::plugins::kv_delete(&mut tx, &s.call.plugin, key).await?;
        tx.commit().await
    })
    .map_err(internal)
}

pub fn keys(
    s: &Sandbox,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<String>, Error> {
    let (state, rt) = s.server()?;
    block_on(&rt, async {
        let mut db = state.store.read().await?;
        store::plugins::kv_keys(
            &mut db,
            &s.call.plugin,
            prefix,
            after,
            i64::from(limit.clamp(1, 1000)),
        )
        .await
    })
    .map_err(internal)
}
