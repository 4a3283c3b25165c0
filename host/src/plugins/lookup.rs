//! Finding the contact a plugin names: by id, by email, or by tracked device. Device
//! ids match nothing until tracking records devices; the tracking work extends
//! `resolve` (one place) when it does.

use super::bindings::types::ContactRef;
use crate::store::{self, DbResult, Exec};

pub async fn resolve(db: &mut impl Exec, who: &ContactRef) -> DbResult<Option<i64>> {
    match who {
        ContactRef::Id(id) => Ok(store::contacts::exists(db, *id).await?.then_some(*id)),
        ContactRef::Email(email) => {
            let email = email.trim();
            if email.is_empty() || email.len() > 320 {
                return Ok(None);
            }
            store::plugins::contact_by_email(db, email).await
        }
        // No devices are recorded yet (tracking is a later issue).
        ContactRef::DeviceId(_) => Ok(None),
    }
}
