//! `host.record-event`: a timeline event on a contact (`record-events`).

use serde_json::Value as Json;

use super::{Error, NewEvent, Sandbox, block_on, internal};
use crate::plugins::capabilities::Capability;
use crate::store;
use crate::time::now_ms;

/// Properties of one event, as JSON text.
pub const MAX_PROPERTIES: usize = 64 * 1024;

/// Checks an event's type and properties: the type must be one the plugin declares
/// (or, for plugins of other kinds, one the catalogue knows); properties a JSON object.
pub fn check_event(
    own: &[String],
    known: impl Fn(&str) -> bool,
    event_type: &str,
    properties: &str,
) -> Result<Json, String> {
    let allowed = if own.is_empty() {
        known(event_type)
    } else {
        own.iter().any(|k| k == event_type)
    };
    if !allowed {
        return Err(format!(
            "the event type `{event_type}` is not one of this plugin's"
        ));
    }
    if properties.len() > MAX_PROPERTIES {
        return Err(format!(
            "event properties are at most {MAX_PROPERTIES} bytes"
        ));
    }
    match serde_json::from_str::<Json>(properties) {
        Ok(v) if holds_nul(&v) => {
            // PostgreSQL's jsonb, which the timeline search reads them as, refuses it.
            Err("event properties must not contain the character U+0000".into())
        }
        Ok(v @ Json::Object(_)) => Ok(v),
        Ok(_) => Err("event properties must be a JSON object".into()),
        Err(e) => Err(format!("event properties are not valid JSON: {e}")),
    }
}

fn holds_nul(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains('\0'),
        Json::Array(items) => items.iter().any(holds_nul),
        Json::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

pub fn record_event(s: &Sandbox, e: NewEvent) -> Result<i64, Error> {
    s.require(Capability::RecordEvents)?;
    let (state, rt) = s.server()?;
    let properties = check_event(
        &s.call.own_types,
        |k| state.events.find(k).is_some(),
        &e.event_type,
        &e.properties,
    )
    .map_err(Error::InvalidInput)?;
    let source = format!("plugin:{}", s.call.plugin);
    block_on(&rt, async {
        let mut tx = state.store.begin().await?;
        if !store::contacts::exists(&mut tx, e.contact_id).await? {
            return Ok(Err(Error::NotFound(format!(
                "there is no contact {}",
                e.contact_id
            ))));
        }
        let event = crate::timeline::NewEvent::new(
            e.contact_id,
            &e.event_type,
            e.occurred_at.unwrap_or_else(now_ms),
            properties,
        )
        .source(&source);
        let id = store::events::insert_returning_id(&mut tx, &event).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Ok(id))
    })
    .map_err(internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_a_json_object_without_nul() {
        let own = vec!["video.watched".to_owned()];
        let check = |p: &str| check_event(&own, |_| false, "video.watched", p);
        assert!(check(r#"{"title": "Intro", "seconds": 12}"#).is_ok());
        assert!(
            check(r#"{"path": "a\\u0000b"}"#).is_ok(),
            "an escaped backslash"
        );
        for bad in [
            r#"{"title": "a\u0000b"}"#,
            r#"{"a\u0000": 1}"#,
            r#"{"list": ["x", "\u0000"]}"#,
            "[1]",
            "{",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check_event(&own, |_| true, "other.type", "{}").is_err());
    }
}
