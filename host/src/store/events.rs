//! Timeline events: one generic table, read newest first per contact.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::db::{Backend, DbResult, Exec, Params, Value};
use crate::params;
use crate::timeline::{Event, NewEvent};

/// The multi-row `INSERT` of a chunk of events, with its parameters.
fn insert_statement(chunk: &[NewEvent], returning: &str) -> (String, Params) {
    let mut p = Params::default();
    let mut sql = String::with_capacity(128 + chunk.len() * 40);
    sql.push_str("INSERT INTO contact_events (contact_id, event_type, source, occurred_at, ref_id, properties) VALUES ");
    for (i, e) in chunk.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        p.write_list(
            &mut sql,
            [
                Value::Int(e.contact_id),
                Value::from(e.event_type.as_str()),
                Value::from(e.source.clone()),
                Value::Int(e.occurred_at),
                Value::from(e.ref_id),
                Value::Text(e.properties.to_string()),
            ],
        );
        sql.push(')');
    }
    sql.push_str(returning);
    (sql, p)
}

/// Inserts events with multi-row statements.
pub async fn insert(db: &mut impl Exec, events: &[NewEvent]) -> DbResult<()> {
    for chunk in events.chunks(1000) {
        let (sql, p) = insert_statement(chunk, "");
        db.execute(&sql, p.values).await?;
    }
    Ok(())
}

/// Inserts events and returns their ids in input order (the ids of page hits are kept on
/// their device to fill in "date left" later).
pub async fn insert_returning_ids(db: &mut impl Exec, events: &[NewEvent]) -> DbResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(1000) {
        let (sql, p) = insert_statement(chunk, " RETURNING id");
        ids.extend(db.inserted_ids(&sql, p.values).await?);
    }
    Ok(ids)
}

/// Which events of a contact to read.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Case-insensitive text that must appear in the event type or its properties.
    pub search: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// The filter's conditions, for one contact's events or (`None`) every contact's.
fn where_clause(
    backend: Backend,
    p: &mut Params,
    contact_id: Option<i64>,
    f: &EventFilter,
) -> String {
    let mut conds = Vec::new();
    if let Some(id) = contact_id {
        conds.push(format!("contact_id = {}", p.push(id)));
    }
    if !f.include.is_empty() {
        let list = p.list(&f.include);
        conds.push(format!("event_type IN ({list})"));
    }
    if !f.exclude.is_empty() {
        let list = p.list(&f.exclude);
        conds.push(format!("event_type NOT IN ({list})"));
    }
    if let Some(s) = f.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", escape_like(&super::fold::fold(s)));
        let ph = p.push(pattern);
        // The properties' values (at any depth), not their JSON text: a quote or a
        // backslash in a note is found as written, and key names match nothing.
        let values = match backend {
            Backend::Sqlite => format!(
                "EXISTS (SELECT 1 FROM json_tree(properties) AS j \
                 WHERE j.type IN ('text', 'integer', 'real') AND fold(j.atom) LIKE {ph} ESCAPE '\\')"
            ),
            Backend::Postgres => format!(
                "EXISTS (SELECT 1 FROM jsonb_path_query(properties::jsonb, 'strict $.**') AS j(v) \
                 WHERE jsonb_typeof(j.v) IN ('string', 'number') AND lower(j.v #>> '{{}}') LIKE {ph} ESCAPE '\\')"
            ),
        };
        conds.push(format!(
            "({values} OR {}(event_type) LIKE {ph} ESCAPE '\\')",
            backend.fold_fn()
        ));
    }
    if let Some(from) = f.from {
        conds.push(format!("occurred_at >= {}", p.push(from)));
    }
    if let Some(to) = f.to {
        conds.push(format!("occurred_at <= {}", p.push(to)));
    }
    if conds.is_empty() {
        return "1 = 1".to_owned();
    }
    conds.join(" AND ")
}

/// Escapes LIKE metacharacters so user text matches literally.
pub fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The events a contact's own row records, shaped like `contact_events` rows (migration
/// 12): created — and added through the API — at `date_added`, identified at
/// `date_identified`, each by the channel its `*_source` column names. Mautic derives
/// them the same way; storing them cost three rows and six index entries per new
/// contact. Their ids are negative (`Event::is_derived`) and distinct, so newest first they
/// read identified, added, created, after the stored events of the same millisecond.
fn derived_rows(backend: Backend, contact: &str) -> String {
    use crate::timeline::keys::{API_ADDED, CREATED, IDENTIFIED};
    let (json, cast, no_ref) = match backend {
        Backend::Sqlite => ("json_object", "", "NULL"),
        Backend::Postgres => ("jsonb_build_object", "::text", "CAST(NULL AS BIGINT)"),
    };
    format!(
        "SELECT -3 * id - 2 AS id, id AS contact_id, '{CREATED}' AS event_type, created_source AS source, \
            date_added AS occurred_at, {no_ref} AS ref_id, {json}('source', created_source){cast} AS properties \
            FROM contacts WHERE id = {contact} AND created_source IS NOT NULL \
         UNION ALL SELECT -3 * id - 1, id, '{API_ADDED}', created_source, date_added, {no_ref}, \
            {json}('user', created_by){cast} FROM contacts WHERE id = {contact} AND created_source = 'api' \
         UNION ALL SELECT -3 * id, id, '{IDENTIFIED}', identified_source, date_identified, {no_ref}, \
            {json}('source', identified_source){cast} \
            FROM contacts WHERE id = {contact} AND identified_source IS NOT NULL AND date_identified IS NOT NULL"
    )
}

const EVENT_COLUMNS: &str = "id, contact_id, event_type, source, occurred_at, ref_id, properties";

/// Where a contact's matching events come from, stored and derived: two `FROM … WHERE …`
/// clauses that each statement selects from and combines itself. Not a view: ordered and
/// limited, the stored arm reads its index in order and the arms are merged, and counted,
/// each arm is counted from its index, where a view would read every event of the contact.
fn arms(backend: Backend, p: &mut Params, contact_id: i64, f: &EventFilter) -> (String, String) {
    let cond = where_clause(backend, p, Some(contact_id), f);
    let derived = derived_rows(backend, &p.push(contact_id));
    (
        format!("FROM contact_events WHERE {cond}"),
        format!("FROM ({derived}) AS derived WHERE {cond}"),
    )
}

/// Stores the derived events of contacts as rows and stops deriving them: a merge moves
/// the loser's rows to the winner and changes the winner's dates, and each contact's
/// history must survive that as it was.
pub async fn store_derived(db: &mut impl Exec, contact_ids: &[i64]) -> DbResult<()> {
    for id in contact_ids {
        let derived = derived_rows(db.backend(), "$1");
        db.execute(
            &format!(
                "INSERT INTO contact_events (contact_id, event_type, source, occurred_at, ref_id, properties) \
                 SELECT contact_id, event_type, source, occurred_at, ref_id, properties FROM ({derived}) AS derived ORDER BY id"
            ),
            params![*id],
        )
        .await?;
        db.execute(
            "UPDATE contacts SET created_source = NULL, identified_source = NULL WHERE id = $1",
            params![*id],
        )
        .await?;
    }
    Ok(())
}

fn from_row(r: &super::db::Row) -> Event {
    Event {
        id: r.i64("id"),
        contact_id: r.i64("contact_id"),
        event_type: r.text("event_type"),
        source: r.opt_text("source"),
        occurred_at: r.i64("occurred_at"),
        ref_id: r.opt_i64("ref_id"),
        properties: serde_json::from_str(&r.text("properties")).unwrap_or(Json::Null),
    }
}

/// How a page of events is ordered (Mautic's activity `order`).
#[derive(Clone, Debug, Default)]
pub enum EventOrder {
    /// Newest first.
    #[default]
    NewestFirst,
    OldestFirst,
    /// By the types' labels (`(type key, label)` for each known type; other types sort
    /// by their key), then newest first.
    Label {
        labels: Vec<(String, String)>,
        descending: bool,
    },
}

/// A page of a contact's events in `order`, and the total matching.
pub async fn page(
    db: &mut impl Exec,
    contact_id: i64,
    f: &EventFilter,
    offset: i64,
    limit: i64,
    order: &EventOrder,
) -> DbResult<(Vec<Event>, i64)> {
    let total = count(db, contact_id, f).await?;
    let events = rows(db, contact_id, f, offset, limit, order).await?;
    Ok((events, total))
}

/// How many of a contact's events match.
pub async fn count(db: &mut impl Exec, contact_id: i64, f: &EventFilter) -> DbResult<i64> {
    let mut p = Params::default();
    let (stored, derived) = arms(db.backend(), &mut p, contact_id, f);
    Ok(db
        .fetch_i64(
            &format!("SELECT (SELECT COUNT(*) {stored}) + (SELECT COUNT(*) {derived})"),
            p.values,
        )
        .await?
        .unwrap_or(0))
}

/// A page of a contact's events in `order`, without the total (callers that know it from
/// `type_counts`, like the contact page when the history is not searched).
pub async fn rows(
    db: &mut impl Exec,
    contact_id: i64,
    f: &EventFilter,
    offset: i64,
    limit: i64,
    order: &EventOrder,
) -> DbResult<Vec<Event>> {
    let mut p = Params::default();
    let (stored, derived) = arms(db.backend(), &mut p, contact_id, f);
    if let EventOrder::Label { .. } = order {
        // An order by label sorts the contact's matching events (rarely asked for).
        let order = order_by(db.backend(), &mut p, order);
        let (lim, off) = (p.push(limit), p.push(offset));
        let sql = format!(
            "SELECT * FROM (SELECT {EVENT_COLUMNS} {stored} UNION ALL SELECT {EVENT_COLUMNS} {derived}) AS e \
             {order} LIMIT {lim} OFFSET {off}"
        );
        let rows = db.fetch_all(&sql, p.values).await?;
        return Ok(rows.iter().map(from_row).collect());
    }
    // Both directions of time read the `(contact_id, occurred_at, id)` index, forwards or
    // back.
    let order = order_by(db.backend(), &mut p, order);
    let stored = match db.backend() {
        // SQLite merges the arms, reading the stored one in index order.
        Backend::Sqlite => format!("SELECT {EVENT_COLUMNS} {stored}"),
        // PostgreSQL merges them only when each arm is limited; otherwise it sorts every
        // event of the contact (11 ms at 50,000 events, against 0.3 ms).
        Backend::Postgres => format!(
            "SELECT * FROM (SELECT {EVENT_COLUMNS} {stored} {order} LIMIT {}) AS stored",
            p.push(offset.saturating_add(limit))
        ),
    };
    let lim = p.push(limit);
    let off = p.push(offset);
    let sql = format!(
        "{stored} UNION ALL SELECT {EVENT_COLUMNS} {derived} {order} LIMIT {lim} OFFSET {off}"
    );
    let rows = db.fetch_all(&sql, p.values).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// `ORDER BY …` for a page of events; newest first breaks ties by id, as the indexes do.
fn order_by(backend: Backend, p: &mut Params, order: &EventOrder) -> String {
    match order {
        EventOrder::NewestFirst => "ORDER BY occurred_at DESC, id DESC".to_owned(),
        EventOrder::OldestFirst => "ORDER BY occurred_at, id".to_owned(),
        EventOrder::Label { labels, descending } => {
            let mut case = String::from("CASE event_type");
            for (key, label) in labels {
                let (k, l) = (p.push(key.as_str()), p.push(label.as_str()));
                case.push_str(&format!(" WHEN {k} THEN {l}"));
            }
            case.push_str(" ELSE event_type END");
            // Labels compare byte by byte on both databases.
            let dir = if *descending { "DESC" } else { "ASC" };
            format!(
                "ORDER BY ({case}){} {dir}, occurred_at DESC, id DESC",
                backend.bytewise()
            )
        }
    }
}

/// A page of every contact's stored events, with how many match: Mautic's all-contacts
/// activity, which leaves out the events a contact's own row records (created,
/// identified). In time order it reads the `(occurred_at)` index, or, for chosen types,
/// each type's range of the `(event_type, occurred_at)` index, merged, so a rare type is
/// not looked for among every event. The total counts matching index entries (12 million
/// events on SQLite: 0.2 s for all of them).
pub async fn page_everyone(
    db: &mut impl Exec,
    f: &EventFilter,
    offset: i64,
    limit: i64,
    order: &EventOrder,
) -> DbResult<(Vec<Event>, i64)> {
    let backend = db.backend();
    let mut p = Params::default();
    let cond = where_clause(backend, &mut p, None, f);
    let total = db
        .fetch_i64(
            &format!("SELECT COUNT(*) FROM contact_events WHERE {cond}"),
            p.values,
        )
        .await?
        .unwrap_or(0);
    let mut p = Params::default();
    let sql = if f.include.is_empty() || matches!(order, EventOrder::Label { .. }) {
        let cond = where_clause(backend, &mut p, None, f);
        let order = order_by(backend, &mut p, order);
        let (lim, off) = (p.push(limit), p.push(offset));
        format!(
            "SELECT {EVENT_COLUMNS} FROM contact_events WHERE {cond} {order} LIMIT {lim} OFFSET {off}"
        )
    } else {
        let order = order_by(backend, &mut p, order);
        let others = EventFilter {
            include: Vec::new(),
            ..f.clone()
        };
        let mut types = f.include.clone();
        types.sort();
        types.dedup();
        let arms: Vec<String> = types
            .iter()
            .map(|t| {
                let t = p.push(t.as_str());
                let cond = where_clause(backend, &mut p, None, &others);
                let first = p.push(offset.saturating_add(limit));
                format!(
                    "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM contact_events \
                     WHERE event_type = {t} AND {cond} {order} LIMIT {first}) AS t"
                )
            })
            .collect();
        let (lim, off) = (p.push(limit), p.push(offset));
        format!(
            "{} {order} LIMIT {lim} OFFSET {off}",
            arms.join(" UNION ALL ")
        )
    };
    let rows = db.fetch_all(&sql, p.values).await?;
    Ok((rows.iter().map(from_row).collect(), total))
}

/// Event counts per type for a contact (for the filter list).
pub async fn type_counts(db: &mut impl Exec, contact_id: i64) -> DbResult<HashMap<String, i64>> {
    let mut p = Params::default();
    let (stored, derived) = arms(db.backend(), &mut p, contact_id, &EventFilter::default());
    let rows = db
        .fetch_all(
            &format!(
                "SELECT event_type, COUNT(*) AS n {stored} GROUP BY event_type \
                 UNION ALL SELECT event_type, COUNT(*) {derived} GROUP BY event_type"
            ),
            p.values,
        )
        .await?;
    let mut counts = HashMap::new();
    for r in &rows {
        *counts.entry(r.text("event_type")).or_insert(0) += r.i64("n");
    }
    Ok(counts)
}

/// One month of the engagement chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonthTotals {
    /// Events of any type in the month.
    pub events: i64,
    /// Sum of the `delta` of `point.gained` events in the month.
    pub points: i64,
}

/// Per-bucket totals for the engagement chart. `bounds` are ascending bucket starts plus
/// the end of the last bucket (n + 1 values for n buckets). Two grouped statements that
/// each read one contiguous range of a `(contact_id, …, occurred_at)` index, so the cost
/// is one index range scan however the events are spread (50,000 events: a few ms).
pub async fn monthly_totals(
    db: &mut impl Exec,
    contact_id: i64,
    bounds: &[i64],
) -> DbResult<Vec<MonthTotals>> {
    let n = bounds.len().saturating_sub(1);
    let mut out = vec![MonthTotals::default(); n];
    if n == 0 {
        return Ok(out);
    }
    // Bounds are milliseconds: `occurred_at < end` is `<= end - 1`.
    let range = EventFilter {
        from: Some(bounds[0]),
        to: Some(bounds[n] - 1),
        ..EventFilter::default()
    };
    let bucket = |p: &mut Params| {
        let mut case = String::from("CASE");
        for (i, b) in bounds[1..n].iter().enumerate() {
            case.push_str(&format!(" WHEN occurred_at < {} THEN {i}", p.push(*b)));
        }
        case.push_str(&format!(" ELSE {} END", n - 1));
        case
    };
    let mut p = Params::default();
    let (stored, derived) = arms(db.backend(), &mut p, contact_id, &range);
    let case = bucket(&mut p);
    let sql = format!(
        "SELECT {case} AS bucket, COUNT(*) AS n {stored} GROUP BY 1 \
         UNION ALL SELECT {case}, COUNT(*) {derived} GROUP BY 1"
    );
    for r in db.fetch_all(&sql, p.values).await? {
        if let Some(m) = out.get_mut(r.i64("bucket") as usize) {
            m.events += r.i64("n");
        }
    }
    // Points come only from stored `point.gained` events.
    let delta = match db.backend() {
        Backend::Sqlite => "CAST(json_extract(properties, '$.delta') AS INTEGER)",
        Backend::Postgres => {
            "CASE WHEN (properties::jsonb ->> 'delta') ~ '^-?[0-9]{1,15}$' THEN (properties::jsonb ->> 'delta')::bigint ELSE 0 END"
        }
    };
    let points = EventFilter {
        include: vec![crate::timeline::keys::POINTS.to_owned()],
        ..range
    };
    let mut p = Params::default();
    let cond = where_clause(db.backend(), &mut p, Some(contact_id), &points);
    let case = bucket(&mut p);
    let sql = format!(
        "SELECT {case} AS bucket, CAST(COALESCE(SUM({delta}), 0) AS BIGINT) AS points FROM contact_events
         WHERE {cond} GROUP BY 1"
    );
    for r in db.fetch_all(&sql, p.values).await? {
        if let Some(m) = out.get_mut(r.i64("bucket") as usize) {
            m.points = r.i64("points");
        }
    }
    Ok(out)
}

/// Rewrites the properties of the events that describe a row (an edited note).
pub async fn update_for_ref(
    db: &mut impl Exec,
    contact_id: i64,
    event_type: &str,
    ref_id: i64,
    occurred_at: i64,
    properties: &Json,
) -> DbResult<()> {
    db.execute(
        "UPDATE contact_events SET properties = $1, occurred_at = $2 WHERE contact_id = $3 AND event_type = $4 AND ref_id = $5",
        params![properties.to_string(), occurred_at, contact_id, event_type, ref_id],
    )
    .await
    .map(drop)
}

/// Removes the events that describe a row (a deleted note).
pub async fn delete_for_ref(
    db: &mut impl Exec,
    contact_id: i64,
    event_type: &str,
    ref_id: i64,
) -> DbResult<()> {
    db.execute(
        "DELETE FROM contact_events WHERE contact_id = $1 AND event_type = $2 AND ref_id = $3",
        params![contact_id, event_type, ref_id],
    )
    .await
    .map(drop)
}

/// Inserts one event and answers its id.
pub async fn insert_returning_id(db: &mut impl Exec, e: &NewEvent) -> DbResult<i64> {
    db.fetch_i64(
        "INSERT INTO contact_events (contact_id, event_type, source, occurred_at, ref_id, properties)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        params![e.contact_id, e.event_type.as_str(), e.source.clone(), e.occurred_at, e.ref_id, e.properties.to_string()],
    )
    .await
    .map(|id| id.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn insert_statement_numbers_each_rows_values_in_order() {
        let events = [
            NewEvent::new(7, "lead.create", 1_000, json!({})),
            NewEvent::new(8, "page.hit", 2_000, json!({"url": "https://x"})).ref_id(3),
        ];
        let (sql, p) = insert_statement(&events, " RETURNING id");
        assert!(
            sql.ends_with(
                "VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12) RETURNING id"
            ),
            "{sql}"
        );
        assert_eq!(p.values.len(), 12);
        assert_eq!(p.values[6], Value::Int(8));
        assert_eq!(p.values[7], Value::Text("page.hit".into()));
        assert_eq!(p.values[10], Value::Int(3));
        assert_eq!(p.values[11], Value::Text(r#"{"url":"https://x"}"#.into()));
    }
}
