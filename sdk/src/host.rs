//! Typed calls to the host. Inside Magpie they are the WIT imports; in native tests
//! (`cargo test` on your machine) they go to the [`crate::testing::FakeHost`] installed
//! for the current thread, so a plugin's logic is testable without the server.
//!
//! Functions that touch contacts, the timeline or the network need a capability the
//! admin granted; without it they answer `Error::Denied` and do nothing.

use serde_json::Value as Json;

use crate::types::*;

#[cfg(target_arch = "wasm32")]
use crate::bindings::imports::magpie::plugin::host as raw;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::with_host;

/// Writes to Magpie's log, tagged with the plugin's name.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    raw::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    with_host(|h| h.log(level, message));
}
pub fn debug(message: &str) {
    log(LogLevel::Debug, message)
}
pub fn info(message: &str) {
    log(LogLevel::Info, message)
}
pub fn warn(message: &str) {
    log(LogLevel::Warn, message)
}
pub fn error(message: &str) {
    log(LogLevel::Error, message)
}

/// A contact by id (`read-contacts`).
pub fn get_contact(id: i64) -> Result<Option<Contact>> {
    #[cfg(target_arch = "wasm32")]
    return raw::get_contact(id);
    #[cfg(not(target_arch = "wasm32"))]
    with_host(|h| h.get_contact(id))
}

/// The id of the contact with this id, email or device (`read-contacts`).
pub fn find_contact(who: &ContactRef) -> Result<Option<i64>> {
    #[cfg(target_arch = "wasm32")]
    return raw::find_contact(who);
    #[cfg(not(target_arch = "wasm32"))]
    with_host(|h| h.find_contact(who))
}

/// Sets field values (`write-fields`), validated as the API validates them.
pub fn update_fields(contact_id: i64, fields: &[Field]) -> Result<()> {
    #[cfg(target_arch = "wasm32")]
    return raw::update_fields(contact_id, fields);
    #[cfg(not(target_arch = "wasm32"))]
    with_host(|h| h.update_fields(contact_id, fields))
}

/// Adds and removes tags (`write-tags`).
pub fn change_tags(contact_id: i64, add: &[String], remove: &[String]) -> Result<()> {
    #[cfg(target_arch = "wasm32")]
    return raw::change_tags(contact_id, add, remove);
    #[cfg(not(target_arch = "wasm32"))]
    with_host(|h| h.change_tags(contact_id, add, remove))
}

/// Records a timeline event (`record-events`); answers its id.
pub fn record_event(event: &NewEvent) -> Result<i64> {
    #[cfg(target_arch = "wasm32")]
    return raw::record_event(event);
    #[cfg(not(target_arch = "wasm32"))]
    with_host(|h| h.record_event(event))
}

/// The current time (UTC milliseconds).
pub fn now() -> Timestamp {
    #[cfg(target_arch = "wasm32")]
    return raw::now();
    #[cfg(not(target_arch = "wasm32"))]
    with_host(|h| h.now)
}

/// The plugin's configuration, as the admin set it.
pub mod config {
    use super::*;

    /// A value, or the schema's default; `None` when neither exists.
    pub fn get(key: &str) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        return raw::config_get(key);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| {
            h.config
                .iter()
                .find(|p| p.name == key)
                .map(|p| p.value.clone())
        })
    }
    /// A value or `default`.
    pub fn get_or(key: &str, default: &str) -> String {
        get(key).unwrap_or_else(|| default.to_owned())
    }
    /// A value that must be set.
    pub fn require(key: &str) -> Result<String> {
        get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Failed(format!("the setting `{key}` is not configured")))
    }
    pub fn all() -> Vec<Pair> {
        #[cfg(target_arch = "wasm32")]
        return raw::config_all();
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.config.clone())
    }
}

/// Private key-value storage: only this plugin sees its keys.
pub mod storage {
    use super::*;

    pub fn get(key: &str) -> Result<Option<String>> {
        #[cfg(target_arch = "wasm32")]
        return raw::storage_get(key);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| Ok(h.storage.get(key).cloned()))
    }
    pub fn set(key: &str, value: &str) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        return raw::storage_set(key, value);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| {
            h.storage.insert(key.to_owned(), value.to_owned());
            Ok(())
        })
    }
    pub fn delete(key: &str) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        return raw::storage_delete(key);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| {
            h.storage.remove(key);
            Ok(())
        })
    }
    /// Keys starting with `prefix`, in order, after `after`, at most `limit`.
    pub fn keys(prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        #[cfg(target_arch = "wasm32")]
        return raw::storage_keys(prefix, after, limit);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| {
            Ok(h.storage
                .keys()
                .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                .take(limit.min(1000) as usize)
                .cloned()
                .collect())
        })
    }
    /// A JSON value.
    pub fn get_json(key: &str) -> Result<Option<Json>> {
        get(key)?
            .map(|s| serde_json::from_str(&s).map_err(Error::from))
            .transpose()
    }
    pub fn set_json(key: &str, value: &Json) -> Result<()> {
        set(key, &value.to_string())
    }
}

/// Outbound HTTP, to the origins the admin granted (`http` capabilities).
pub mod http {
    use super::*;

    pub fn fetch(request: &HttpRequest) -> Result<HttpResponse> {
        #[cfg(target_arch = "wasm32")]
        return raw::http_fetch(request);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.http_fetch(request))
    }
    pub fn request(method: &str, url: &str) -> HttpRequest {
        HttpRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        }
    }
    pub fn get(url: &str) -> Result<HttpResponse> {
        fetch(&request("GET", url))
    }
    pub fn post_json(url: &str, body: &Json) -> Result<HttpResponse> {
        let mut r = request("POST", url);
        r.headers
            .push(Pair::new("content-type", "application/json"));
        r.body = Some(body.to_string().into_bytes());
        fetch(&r)
    }
}
