//! The `host` interface, one file per area. Every function that needs a capability
//! checks it first and answers `error.denied` without doing anything; errors the plugin
//! should see are `Ok(Err(..))`, and `Err(trap)` is kept for stopping a call that broke
//! a limit (too many host calls).

mod config;
mod contacts;
mod http;
mod log;
mod storage;
mod timeline;

pub use timeline::check_event;

use std::future::Future;
use std::sync::Arc;

use super::bindings::host::{self as wit, HttpRequest, HttpResponse, LogLevel};
use super::bindings::types::{self as t, Contact, ContactRef, Error, Field, NewEvent, Pair};
use super::capabilities::Capability;
use super::sandbox::Sandbox;
use crate::state::AppState;

pub type HostResult<T> = wasmtime::Result<Result<T, Error>>;

impl Sandbox {
    fn require(&self, c: Capability) -> Result<(), Error> {
        if self.call.has(&c) {
            Ok(())
        } else {
            Err(Error::Denied(format!(
                "the plugin `{}` lacks the `{c}` capability (the admin grants it on the Plugins page)",
                self.call.plugin
            )))
        }
    }

    /// The server and a runtime handle, for functions that reach the database.
    fn server(&self) -> Result<(Arc<AppState>, tokio::runtime::Handle), Error> {
        let state = self.call.state.as_ref().and_then(|w| w.upgrade());
        match (state, self.call.runtime.clone()) {
            (Some(s), Some(h)) => Ok((s, h)),
            _ => Err(Error::Unavailable("this host function is not available in this call (rendering and describe are pure)".into())),
        }
    }
}

/// Runs a database future from a plugin call (always on a blocking thread).
fn block_on<F: Future>(handle: &tokio::runtime::Handle, f: F) -> F::Output {
    handle.block_on(f)
}

fn internal(e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "a plugin host function failed");
    Error::Unavailable("the host could not complete this request; it has been logged".into())
}

impl t::Host for Sandbox {}

impl wit::Host for Sandbox {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.charge()?;
        log::log(self, level, &message);
        Ok(())
    }

    fn get_contact(&mut self, id: i64) -> HostResult<Option<Contact>> {
        self.charge()?;
        Ok(contacts::get_contact(self, id))
    }

    fn find_contact(&mut self, who: ContactRef) -> HostResult<Option<i64>> {
        self.charge()?;
        Ok(contacts::find_contact(self, &who))
    }

    fn update_fields(&mut self, contact_id: i64, fields: Vec<Field>) -> HostResult<()> {
        self.charge()?;
        Ok(contacts::update_fields(self, contact_id, fields))
    }

    fn change_tags(
        &mut self,
        contact_id: i64,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> HostResult<()> {
        self.charge()?;
        Ok(contacts::change_tags(self, contact_id, add, remove))
    }

    fn record_event(&mut self, event: NewEvent) -> HostResult<i64> {
        self.charge()?;
        Ok(timeline::record_event(self, event))
    }

    fn storage_get(&mut self, key: String) -> HostResult<Option<String>> {
        self.charge()?;
        Ok(storage::get(self, &key))
    }

    fn storage_set(&mut self, key: String, value: String) -> HostResult<()> {
        self.charge()?;
        Ok(storage::set(self, &key, &value))
    }

    fn storage_delete(&mut self, key: String) -> HostResult<()> {
        self.charge()?;
        Ok(storage::delete(self, &key))
    }

    fn storage_keys(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> HostResult<Vec<String>> {
        self.charge()?;
        Ok(storage::keys(self, &prefix, after.as_deref(), limit))
    }

    fn config_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.charge()?;
        Ok(config::get(self, &key))
    }

    fn config_all(&mut self) -> wasmtime::Result<Vec<Pair>> {
        self.charge()?;
        Ok(config::all(self))
    }

    fn http_fetch(&mut self, request: HttpRequest) -> HostResult<HttpResponse> {
        self.charge()?;
        http::fetch(self, request)
    }

    fn now(&mut self) -> wasmtime::Result<i64> {
        self.charge()?;
        Ok(crate::time::now_ms())
    }
}
