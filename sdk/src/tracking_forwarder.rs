//! Tracking forwarders: a script snippet for the tracking JS, and server-side forwarding.

use std::marker::PhantomData;

use crate::bindings::tracking_forwarder as world;
use crate::types::*;

pub use world::exports::magpie::plugin::forwarding::{
    ForwardFilter, HitKind, SnippetContext, TrackedHit,
};

/// A plugin of the `tracking-forwarder` kind.
pub trait TrackingForwarder {
    fn describe() -> PluginInfo;

    /// JavaScript appended to `mtc.js`; `None` (the default) for none.
    fn script_snippet(context: SnippetContext) -> Option<String> {
        let _ = context;
        None
    }

    /// Which hits `forward` wants. The default: none (browser-side only).
    fn filter() -> ForwardFilter {
        ForwardFilter {
            kinds: Vec::new(),
            identified_only: false,
        }
    }

    /// Sends one hit to the outside service.
    fn forward(hit: TrackedHit) -> Result<()> {
        let _ = hit;
        Ok(())
    }
}

impl TrackedHit {
    pub fn utm(&self, name: &str) -> Option<&str> {
        find_pair(&self.utm, name)
    }
    pub fn param(&self, name: &str) -> Option<&str> {
        find_pair(&self.params, name)
    }
}

#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: TrackingForwarder + 'static> world::Guest for Export<T> {
    fn describe() -> PluginInfo {
        PluginInfo {
            kind: PluginKind::TrackingForwarder,
            ..T::describe()
        }
    }
}

impl<T: TrackingForwarder + 'static> world::exports::magpie::plugin::forwarding::Guest
    for Export<T>
{
    fn script_snippet(context: SnippetContext) -> Option<String> {
        T::script_snippet(context)
    }
    fn filter() -> ForwardFilter {
        T::filter()
    }
    fn forward(hit: TrackedHit) -> Result<()> {
        T::forward(hit)
    }
}
