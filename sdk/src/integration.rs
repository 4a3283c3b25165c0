//! Integrations: social profiles and CRM sync.

use std::marker::PhantomData;

use crate::bindings::integration as world;
use crate::types::*;

pub use world::exports::magpie::plugin::crm::{
    CrmFeatures, FieldMapping, PullBatch, PushAction, PushOutcome, PushRequest, RemoteChange,
    RemoteField, SocialProfile, SyncDirection,
};

/// A plugin of the `integration` kind. Implement what `features` announces; the rest
/// keeps the defaults, which refuse.
pub trait Integration {
    fn describe() -> PluginInfo;

    fn features() -> CrmFeatures;

    fn social_profiles(contact: Contact) -> Result<Vec<SocialProfile>> {
        let _ = contact;
        Ok(Vec::new())
    }

    fn remote_fields() -> Result<Vec<RemoteField>> {
        Err(Error::NotFound(
            "this integration has no field mapping".into(),
        ))
    }

    fn push(request: PushRequest) -> Result<PushOutcome> {
        let _ = request;
        Err(Error::NotFound(
            "this integration does not push contacts".into(),
        ))
    }

    fn pull(cursor: Option<String>, mapping: Vec<FieldMapping>, limit: u32) -> Result<PullBatch> {
        let _ = (cursor, mapping, limit);
        Err(Error::NotFound(
            "this integration does not pull changes".into(),
        ))
    }
}

impl CrmFeatures {
    pub fn none() -> CrmFeatures {
        CrmFeatures {
            social_profiles: false,
            push: false,
            pull: false,
            field_mapping: false,
        }
    }
}

#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: Integration + 'static> world::Guest for Export<T> {
    fn describe() -> PluginInfo {
        PluginInfo {
            kind: PluginKind::Integration,
            ..T::describe()
        }
    }
}

impl<T: Integration + 'static> world::exports::magpie::plugin::crm::Guest for Export<T> {
    fn features() -> CrmFeatures {
        T::features()
    }
    fn social_profiles(contact: Contact) -> Result<Vec<SocialProfile>> {
        T::social_profiles(contact)
    }
    fn remote_fields() -> Result<Vec<RemoteField>> {
        T::remote_fields()
    }
    fn push(request: PushRequest) -> Result<PushOutcome> {
        T::push(request)
    }
    fn pull(cursor: Option<String>, mapping: Vec<FieldMapping>, limit: u32) -> Result<PullBatch> {
        T::pull(cursor, mapping, limit)
    }
}
