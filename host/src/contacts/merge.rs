//! Merging two contacts into one, losing nothing. One engine for tracking, forms, the
//! admin and the API.
//!
//! Rules: every row of the loser moves to the winner (`store::merge::MOVES`); for each
//! field the non-empty value of the more recently modified contact wins and an empty value
//! never overwrites; points add up; the earlier `dateIdentified` and the later
//! `lastActive` are kept; owner and stage stay the winner's unless it has none. A merge
//! record keeps the loser's id resolving to the winner, and the winner's timeline gets a
//! `lead.merged` event saying what came from whom. It all happens in one transaction.

use serde_json::{Map, Value as Json, json};

use super::Contact;
use super::fields::{FieldSet, Storage};
use super::service::Source;
use crate::error::{AppError, AppResult};
use crate::store::{self, Backend, Exec, Store, Tx, Value};
use crate::timeline::{NewEvent, keys};

#[derive(Clone, Debug, PartialEq)]
pub struct MergeSummary {
    pub winner: i64,
    pub loser: i64,
    /// Field values the winner took from the loser.
    pub fields_taken: Vec<String>,
    pub rows_moved: Vec<(String, u64)>,
}

/// How a merge settles a field both contacts have, and what it requires of the loser.
#[derive(Clone, Copy, Default)]
pub struct Terms<'a> {
    /// The winner's non-empty values win (an edit just asked for them); otherwise the
    /// more recently modified contact's do.
    pub winner_wins: bool,
    /// Checked on the loser as read under the merge's locks; false is a 409 and leaves
    /// both contacts as they are (what made them duplicates changed meanwhile).
    pub loser_must: Option<&'a (dyn Fn(&Contact) -> bool + Sync)>,
}

/// Merges `pair.1` (the loser) into `pair.0` (the winner) in its own transaction.
pub async fn merge(
    store: &Store,
    fields: &FieldSet,
    pair: (i64, i64),
    source: Source,
    actor: Option<i64>,
    now: i64,
    terms: Terms<'_>,
) -> AppResult<MergeSummary> {
    // Two merges of one pair in opposite directions may deadlock on PostgreSQL: the one
    // run again then finds its contacts, or not.
    super::service::in_transaction(store, |tx, _, _| {
        Box::pin(merge_in(tx, fields, pair, source, actor, now, terms))
    })
    .await
}

/// `merge` inside the caller's transaction.
pub async fn merge_in(
    tx: &mut Tx,
    fields: &FieldSet,
    (winner, loser): (i64, i64),
    source: Source,
    actor: Option<i64>,
    now: i64,
    terms: Terms<'_>,
) -> AppResult<MergeSummary> {
    if winner == loser {
        return Err(AppError::invalid(
            "contact",
            "a contact cannot be merged with itself",
        ));
    }
    let mut both = store::contacts::load(tx, fields, &[winner, loser]).await?;
    if both.len() == 2 && tx.backend() == Backend::Postgres {
        // Writes run concurrently there and the merge writes sums of what it reads: take
        // what a save of these contacts takes, in the same order (identifier values, then
        // rows), and read them again.
        crate::contacts::service::lock_identifiers_of(tx, fields, &both).await?;
        store::contacts::lock_rows(tx, &[winner, loser], store::contacts::RowLock::Delete).await?;
        both = store::contacts::load(tx, fields, &[winner, loser]).await?;
    }
    if both.len() != 2 {
        return Err(AppError::not_found());
    }
    let (w, l) = if both[0].id == winner {
        (both.remove(0), both.remove(0))
    } else {
        (both.remove(1), both.remove(0))
    };
    if terms.loser_must.is_some_and(|must| !must(&l)) {
        return Err(AppError::Conflict(format!(
            "contact {loser} no longer matches contact {winner}"
        )));
    }
    let merged = merged_contact(fields, &w, &l, terms.winner_wins);
    let fields_taken: Vec<String> = fields
        .iter()
        .filter(|f| f.storage() == Storage::Column && w.field_value(f) != merged.field_value(f))
        .map(|f| f.alias.clone())
        .collect();

    // The winner's dates change below and the loser's row goes: both histories keep
    // their creation and identification as stored events.
    store::events::store_derived(tx, &[winner, loser]).await?;
    let rows_moved = store::merge::move_rows(tx, winner, loser).await?;
    let mut sets: Vec<(String, Value)> = fields_taken
        .iter()
        .filter_map(|a| fields.get(a))
        .map(|f| (store::fields::column(&f.alias), merged.field_value(f)))
        .collect();
    sets.push(("points".into(), Value::Int(merged.points)));
    sets.push(("last_active".into(), Value::from(merged.last_active)));
    sets.push((
        "date_identified".into(),
        Value::from(merged.date_identified),
    ));
    sets.push(("owner_id".into(), Value::from(merged.owner_id)));
    sets.push(("stage_id".into(), Value::from(merged.stage_id)));
    sets.push(("date_modified".into(), Value::Int(now)));
    if let Some(actor) = actor {
        sets.push(("modified_by".into(), Value::Int(actor)));
    }
    store::contacts::update(tx, winner, sets).await?;
    store::contacts::delete(tx, &[loser]).await?;
    store::merge::record(tx, winner, loser, now).await?;

    let mut taken = Map::new();
    for alias in &fields_taken {
        if let Some(f) = fields.get(alias) {
            taken.insert(
                alias.clone(),
                crate::contacts::values::to_json(f, &merged.field_value(f)),
            );
        }
    }
    let moved: Map<String, Json> = rows_moved
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| ((*t).to_owned(), json!(n)))
        .collect();
    let event = NewEvent::new(
        winner,
        keys::MERGED,
        now,
        json!({
            "merged_id": loser,
            "merged_name": l.display_name(),
            "fields_taken": taken,
            "points_added": l.points,
            "rows_moved": moved,
            "by": actor,
        }),
    )
    .source(source.as_str());
    store::events::insert(tx, &[event]).await?;
    Ok(MergeSummary {
        winner,
        loser,
        fields_taken,
        rows_moved: rows_moved
            .into_iter()
            .map(|(t, n)| (t.to_owned(), n))
            .collect(),
    })
}

/// The merged state of two contacts (the winner keeps its id). Where both have a value,
/// the winner's when `winner_wins`, else the more recently modified contact's.
pub fn merged_contact(
    fields: &FieldSet,
    winner: &Contact,
    loser: &Contact,
    winner_wins: bool,
) -> Contact {
    let mut out = winner.clone();
    let loser_newer = !winner_wins && loser.date_modified > winner.date_modified;
    for f in fields.iter().filter(|f| f.storage() == Storage::Column) {
        let w = winner
            .value(&f.alias)
            .filter(|v| v.to_text().is_some_and(|s| !s.is_empty()));
        let l = loser
            .value(&f.alias)
            .filter(|v| v.to_text().is_some_and(|s| !s.is_empty()));
        let pick = match (w, l) {
            (Some(_), Some(l)) if loser_newer => Some(l.clone()),
            (Some(w), _) => Some(w.clone()),
            (None, Some(l)) => Some(l.clone()),
            (None, None) => None,
        };
        if let Some(v) = pick {
            out.values.insert(f.alias.clone(), v);
        }
    }
    out.points = winner.points.saturating_add(loser.points);
    out.date_identified = match (winner.date_identified, loser.date_identified) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    out.last_active = match (winner.last_active, loser.last_active) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    out.owner_id = winner.owner_id.or(loser.owner_id);
    out.stage_id = winner.stage_id.or(loser.stage_id);
    let mut tags = winner.tags.clone();
    for t in &loser.tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    out.tags = tags;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: i64, modified: i64, values: &[(&str, &str)]) -> Contact {
        Contact {
            id,
            date_modified: modified,
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::Text((*v).to_owned())))
                .collect(),
            ..Contact::default()
        }
    }

    #[test]
    fn field_rules() {
        let fields = FieldSet::defaults_for_tests();
        type Values<'a> = &'a [(&'a str, &'a str)];
        type Expected<'a> = &'a [(&'a str, Option<&'a str>)];
        // (winner values, loser values, loser newer?, expected)
        let cases: Vec<(Values, Values, bool, Expected)> = vec![
            (
                &[("firstname", "Ada")],
                &[("firstname", "Augusta")],
                false,
                &[("firstname", Some("Ada"))],
            ),
            (
                &[("firstname", "Ada")],
                &[("firstname", "Augusta")],
                true,
                &[("firstname", Some("Augusta"))],
            ),
            (
                &[("firstname", "Ada")],
                &[("firstname", "")],
                true,
                &[("firstname", Some("Ada"))],
            ),
            (
                &[],
                &[("city", "London")],
                false,
                &[("city", Some("London"))],
            ),
            (&[("city", "Paris")], &[], true, &[("city", Some("Paris"))]),
            (&[], &[], true, &[("city", None)]),
        ];
        for (w, l, loser_newer, want) in cases {
            let winner = contact(1, 100, w);
            let loser = contact(2, if loser_newer { 200 } else { 50 }, l);
            let m = merged_contact(&fields, &winner, &loser, false);
            assert_eq!(m.id, 1);
            for (alias, value) in want {
                assert_eq!(m.text(alias).as_deref(), *value, "{alias} in {w:?} + {l:?}");
            }
        }
        // An edit's merge: the winner's values win even when the loser is newer; the
        // loser still fills what the winner lacks.
        let winner = contact(1, 100, &[("firstname", "Ann")]);
        let loser = contact(2, 200, &[("firstname", "Bob"), ("city", "Oslo")]);
        let m = merged_contact(&fields, &winner, &loser, true);
        assert_eq!(m.text("firstname").as_deref(), Some("Ann"));
        assert_eq!(m.text("city").as_deref(), Some("Oslo"));
    }

    #[test]
    fn system_rules() {
        let fields = FieldSet::defaults_for_tests();
        let mut w = contact(1, 100, &[]);
        let mut l = contact(2, 50, &[]);
        w.points = 10;
        l.points = 5;
        w.date_identified = Some(500);
        l.date_identified = Some(300);
        w.last_active = Some(1000);
        l.last_active = Some(2000);
        w.owner_id = None;
        l.owner_id = Some(7);
        w.tags = vec!["a".into()];
        l.tags = vec!["a".into(), "b".into()];
        let m = merged_contact(&fields, &w, &l, false);
        assert_eq!(m.points, 15);
        assert_eq!(m.date_identified, Some(300));
        assert_eq!(m.last_active, Some(2000));
        assert_eq!(m.owner_id, Some(7));
        assert_eq!(m.tags, vec!["a", "b"]);
    }
}
