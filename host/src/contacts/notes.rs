//! Notes on contacts. A note is also a `lead.note` timeline event (kept in step on edit
//! and delete) so the history shows it in order with everything else.

use serde_json::{Value as Json, json};

use super::input::Problems;
use crate::error::{AppError, AppResult};
use crate::store::{self, Store, notes::Note};
use crate::time::now_ms;
use crate::timeline::{NewEvent, keys};

pub const TYPES: [&str; 4] = ["general", "email", "call", "meeting"];
pub const MAX_TEXT: usize = 65_535;

pub fn parse_type(s: &str) -> AppResult<&'static str> {
    TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(s.trim()))
        .copied()
        .ok_or_else(|| AppError::invalid("type", "must be general, email, call or meeting"))
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NoteInput {
    pub contact_id: Option<i64>,
    pub text: Option<String>,
    pub note_type: Option<&'static str>,
    /// `Some(None)` clears the date-time.
    pub date_time: Option<Option<i64>>,
}

impl NoteInput {
    /// Mautic's note body: `lead`, `text`, `type`, `dateTime`.
    pub fn from_json(body: &Json, creating: bool) -> AppResult<NoteInput> {
        let o = body
            .as_object()
            .ok_or_else(|| AppError::bad_request("the body must be a JSON object"))?;
        let mut problems = Problems::default();
        // What a GET answers besides these is read-only: accepted and ignored, since
        // clients send back the note they read.
        const READ_ONLY: [&str; 6] = [
            "id",
            "dateAdded",
            "dateModified",
            "createdBy",
            "createdByUser",
            "modifiedBy",
        ];
        for k in o.keys() {
            if !["lead", "text", "type", "dateTime"].contains(&k.as_str())
                && !READ_ONLY.contains(&k.as_str())
            {
                problems.add(k, "is not a note property");
            }
        }
        problems.into_result()?;
        let mut input = NoteInput::default();
        let mut problems = Problems::default();
        match o.get("lead") {
            Some(v) => match v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .or_else(|| v.get("id").and_then(Json::as_i64))
            {
                Some(id) if id > 0 => input.contact_id = Some(id),
                _ => problems.add("lead", "must be a contact id"),
            },
            None if creating => problems.add("lead", "lead ID is mandatory"),
            None => {}
        }
        match o.get("text") {
            Some(Json::String(s)) if s.trim().is_empty() => {
                problems.add("text", "Note text cannot be empty")
            }
            Some(Json::String(s)) if s.chars().count() > MAX_TEXT => {
                problems.add("text", format!("must be at most {MAX_TEXT} characters"))
            }
            Some(Json::String(s))
                if s.chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
            {
                problems.add("text", "must not contain control characters")
            }
            Some(Json::String(s)) => input.text = Some(s.clone()),
            Some(_) => problems.add("text", "must be a string"),
            None if creating => problems.add("text", "Note text cannot be empty"),
            None => {}
        }
        match o.get("type") {
            Some(Json::String(s)) => match parse_type(s) {
                Ok(t) => input.note_type = Some(t),
                Err(_) => problems.add("type", "must be general, email, call or meeting"),
            },
            Some(Json::Null) | None => {}
            Some(_) => problems.add("type", "must be general, email, call or meeting"),
        }
        match o.get("dateTime") {
            None => {}
            Some(Json::Null) => input.date_time = Some(None),
            Some(Json::String(s)) if s.trim().is_empty() => input.date_time = Some(None),
            Some(Json::String(s)) => match crate::time::parse_datetime(s) {
                Some(t) => input.date_time = Some(Some(t.timestamp_millis())),
                None => problems.add("dateTime", "must be a date and time like 2024-05-01 14:30"),
            },
            Some(_) => problems.add("dateTime", "must be a date and time like 2024-05-01 14:30"),
        }
        problems.into_result()?;
        Ok(input)
    }
}

impl NoteInput {
    /// What a PUT on an existing note means (Mautic submits its form clearing what is
    /// missing): a whole note, so what the body leaves out returns to a new note's value —
    /// type `general`, no date-time. The text cannot be left out; the contact is kept.
    pub fn replacing(mut self) -> AppResult<NoteInput> {
        if self.text.is_none() {
            return Err(AppError::invalid("text", "Note text cannot be empty"));
        }
        self.note_type.get_or_insert("general");
        self.date_time.get_or_insert(None);
        Ok(self)
    }
}

fn event_props(n: &Note) -> Json {
    json!({ "note_id": n.id, "text": n.text, "type": n.note_type, "dateTime": n.date_time.map(crate::time::iso) })
}

/// When the note shows in the history: its date-time (calls, meetings) or when written.
fn event_time(n: &Note) -> i64 {
    n.date_time.unwrap_or(n.date_added)
}

pub async fn create(store: &Store, input: &NoteInput, author: Option<i64>) -> AppResult<Note> {
    let contact_id = input
        .contact_id
        .ok_or_else(|| AppError::invalid("lead", "lead ID is mandatory"))?;
    let text = input
        .text
        .as_deref()
        .ok_or_else(|| AppError::invalid("text", "Note text cannot be empty"))?;
    let note_type = input.note_type.unwrap_or("general");
    let now = now_ms();
    let mut tx = store.begin().await?;
    // A merged-away contact's id names the contact it went into.
    let contact_id = store::merge::current_id(&mut tx, contact_id)
        .await?
        .ok_or_else(|| AppError::NotFound("Contact not found.".into()))?;
    let date_time = input.date_time.flatten();
    let id =
        store::notes::insert(&mut tx, contact_id, text, note_type, date_time, author, now).await?;
    let note = store::notes::get(&mut tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("note vanished"))?;
    store::events::insert(
        &mut tx,
        &[NewEvent::new(
            contact_id,
            keys::NOTE,
            event_time(&note),
            event_props(&note),
        )
        .ref_id(id)
        .source("note")],
    )
    .await?;
    tx.commit().await?;
    Ok(note)
}

pub async fn update(store: &Store, id: i64, input: &NoteInput) -> AppResult<Note> {
    let mut tx = store.begin().await?;
    let before = store::notes::get(&mut tx, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    if input.contact_id.is_some_and(|c| c != before.contact_id) {
        return Err(AppError::invalid(
            "lead",
            "a note cannot move to another contact",
        ));
    }
    let text = input.text.clone().unwrap_or(before.text.clone());
    let note_type = input.note_type.unwrap_or(
        TYPES
            .iter()
            .find(|t| **t == before.note_type)
            .copied()
            .unwrap_or("general"),
    );
    let date_time = input.date_time.unwrap_or(before.date_time);
    store::notes::update(&mut tx, id, &text, note_type, date_time, now_ms()).await?;
    let note = store::notes::get(&mut tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("note vanished"))?;
    store::events::update_for_ref(
        &mut tx,
        note.contact_id,
        keys::NOTE,
        id,
        event_time(&note),
        &event_props(&note),
    )
    .await?;
    tx.commit().await?;
    Ok(note)
}

pub async fn delete(store: &Store, id: i64) -> AppResult<Note> {
    let mut tx = store.begin().await?;
    let note = store::notes::get(&mut tx, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    store::notes::delete(&mut tx, id).await?;
    store::events::delete_for_ref(&mut tx, note.contact_id, keys::NOTE, id).await?;
    tx.commit().await?;
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_bodies() {
        let ok = NoteInput::from_json(
            &json!({"lead": 5, "text": "Called", "type": "Call", "dateTime": "2024-05-01 14:30"}),
            true,
        )
        .unwrap();
        assert_eq!(ok.contact_id, Some(5));
        assert_eq!(ok.note_type, Some("call"));
        assert!(ok.date_time.unwrap().is_some());
        for bad in [
            json!({"text": "x"}),
            json!({"lead": 5}),
            json!({"lead": 5, "text": "  "}),
            json!({"lead": 5, "text": "x", "type": "letter"}),
            json!({"lead": 5, "text": "x", "dateTime": "soon"}),
            json!({"lead": "abc", "text": "x"}),
            json!({"lead": 5, "text": "x", "colour": "red"}),
            json!("text"),
        ] {
            assert!(NoteInput::from_json(&bad, true).is_err(), "{bad}");
        }
        assert!(NoteInput::from_json(&json!({"text": "edited"}), false).is_ok());
    }
}
