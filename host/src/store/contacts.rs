//! Contact rows and what hangs off them: tags, IP addresses, do-not-contact records and
//! UTM tags. Batch-shaped: every function takes many contacts so a batch request costs a
//! handful of statements, not hundreds.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::db::{Backend, DbResult, Exec, Kind, Params, Row, Value};
use super::fields::{column, search_expr};
use crate::contacts::Contact;
use crate::contacts::fields::{FieldSet, Storage};
use crate::params;

/// Largest number of bound parameters per statement (SQLite allows 32766).
const MAX_PARAMS: usize = 30_000;

pub const SYSTEM_COLUMNS: &str = "id, date_added, date_modified, date_identified, last_active, created_by, modified_by, \
    owner_id, stage_id, points, preferred_profile_image";

/// `SELECT` list for whole contacts: system columns then every field column. Built from
/// the field set so a cached statement never outlives a schema change.
pub fn select_list(fields: &FieldSet, prefix: &str) -> String {
    let mut cols: Vec<String> = SYSTEM_COLUMNS
        .split(", ")
        .map(|c| format!("{prefix}{c}"))
        .collect();
    for f in fields.iter().filter(|f| f.storage() == Storage::Column) {
        cols.push(format!("{prefix}{}", column(&f.alias)));
    }
    cols.join(", ")
}

pub fn from_row(fields: &FieldSet, r: &Row) -> Contact {
    let mut values = HashMap::new();
    for f in fields.iter().filter(|f| f.storage() == Storage::Column) {
        let v = r.get(&f.alias).clone();
        // SQLite hands back what was stored; keep numbers numbers.
        let v = match (f.kind(), v) {
            (Kind::Float, Value::Int(i)) => Value::Float(i as f64),
            (_, v) => v,
        };
        values.insert(f.alias.clone(), v);
    }
    Contact {
        id: r.i64("id"),
        date_added: r.i64("date_added"),
        date_modified: r.i64("date_modified"),
        date_identified: r.opt_i64("date_identified"),
        last_active: r.opt_i64("last_active"),
        created_by: r.opt_i64("created_by"),
        modified_by: r.opt_i64("modified_by"),
        owner_id: r.opt_i64("owner_id"),
        stage_id: r.opt_i64("stage_id"),
        points: r.i64("points"),
        preferred_profile_image: r.opt_text("preferred_profile_image"),
        values,
        tags: Vec::new(),
    }
}

/// How a write holds the rows it read (`lock_rows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLock {
    /// To update them: what an UPDATE itself takes, which leaves foreign-key checks of
    /// other transactions (an event inserted for the contact) free to run.
    Update,
    /// To delete one of them (a merge's loser, a delete).
    Delete,
}

/// Locks the rows of these contacts until the transaction ends, so what a write reads
/// from them stays true until it commits (PostgreSQL runs writes concurrently; a merge
/// adding up two contacts' points must not miss an increment made meanwhile). Rows are
/// locked in id order, so two writers that each take one such set never wait for each
/// other crosswise. SQLite has one writer: nothing to do.
pub async fn lock_rows(db: &mut impl Exec, ids: &[i64], lock: RowLock) -> DbResult<()> {
    if db.backend() != Backend::Postgres || ids.is_empty() {
        return Ok(());
    }
    let mode = match lock {
        RowLock::Update => "FOR NO KEY UPDATE",
        RowLock::Delete => "FOR UPDATE",
    };
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(1000) {
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let sql = format!("SELECT id FROM contacts WHERE id IN ({list}) ORDER BY id {mode}");
        db.fetch_all(&sql, p.values).await?;
    }
    Ok(())
}

/// Loads contacts (with their tags) by id, in the order of `ids`; unknown ids are skipped.
pub async fn load(db: &mut impl Exec, fields: &FieldSet, ids: &[i64]) -> DbResult<Vec<Contact>> {
    let mut out: HashMap<i64, Contact> = HashMap::new();
    for chunk in ids.chunks(1000) {
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let sql = format!(
            "SELECT {} FROM contacts WHERE id IN ({list})",
            select_list(fields, "")
        );
        for row in db.fetch_all(&sql, p.values).await? {
            let c = from_row(fields, &row);
            out.insert(c.id, c);
        }
    }
    let found: Vec<i64> = out.keys().copied().collect();
    for (id, tags) in tags_of(db, &found).await? {
        if let Some(c) = out.get_mut(&id) {
            c.tags = tags;
        }
    }
    Ok(ids.iter().filter_map(|id| out.remove(id)).collect())
}

pub async fn exists(db: &mut impl Exec, id: i64) -> DbResult<bool> {
    Ok(db
        .fetch_optional("SELECT id FROM contacts WHERE id = $1", params![id])
        .await?
        .is_some())
}

/// PostgreSQL: `(VALUES (a), (b) …) AS probe(value)`, for a `CROSS JOIN LATERAL (…
/// WHERE key = probe.value OFFSET 0)` that looks each value up with one index probe,
/// whatever the statistics say. Planned as an `IN` list on a table without statistics yet
/// (a new database, until autovacuum first analyses it: a minute or more of bulk writes),
/// each value is guessed to match 0.5% of the table, so 200 values read all of it: 98 ms
/// a duplicate lookup at 200,000 contacts instead of 3 ms. `OFFSET 0` keeps the subquery
/// from being flattened into a join planned the same way.
fn probe_values(values: &[String]) -> String {
    format!("(VALUES ({})) AS probe(value)", values.join("), ("))
}

/// Tag names per contact, sorted by name.
pub async fn tags_of(db: &mut impl Exec, ids: &[i64]) -> DbResult<HashMap<i64, Vec<String>>> {
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let sql = match db.backend() {
            Backend::Sqlite => format!(
                "SELECT ct.contact_id, t.tag FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id
                 WHERE ct.contact_id IN ({}) ORDER BY t.tag",
                p.list(chunk.iter().copied())
            ),
            Backend::Postgres => {
                let ids: Vec<String> = chunk.iter().map(|id| p.push(*id)).collect();
                format!(
                    "SELECT ct.contact_id, t.tag FROM {} \
                     CROSS JOIN LATERAL (SELECT contact_id, tag_id FROM contact_tags \
                     WHERE contact_id = probe.value OFFSET 0) AS ct \
                     JOIN tags t ON t.id = ct.tag_id ORDER BY t.tag{}",
                    probe_values(&ids),
                    Backend::Postgres.bytewise()
                )
            }
        };
        for row in db.fetch_all(&sql, p.values).await? {
            out.entry(row.i64("contact_id"))
                .or_default()
                .push(row.text("tag"));
        }
    }
    Ok(out)
}

/// Contacts whose unique-identifier columns equal any of the probed values
/// (case-insensitively for text). Returns each candidate's id and its identifier values,
/// lower-cased, so the caller can apply the AND/OR rule.
pub async fn find_by_identifiers(
    db: &mut impl Exec,
    fields: &FieldSet,
    probes: &HashMap<String, Vec<Value>>,
) -> DbResult<Vec<(i64, HashMap<String, Value>)>> {
    let backend = db.backend();
    let ui: Vec<_> = fields
        .unique_identifiers()
        .filter(|f| f.storage() == Storage::Column)
        .collect();
    let select: Vec<String> = ui
        .iter()
        .map(|f| {
            format!(
                "{} AS {}",
                search_expr(backend, &column(&f.alias), f.kind()),
                column(&f.alias)
            )
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for f in &ui {
        let Some(values) = probes.get(&f.alias) else {
            continue;
        };
        for chunk in values.chunks(500) {
            let mut p = Params::default();
            // The database folds both sides, so they fold alike.
            // Values come as text; a number identifier is compared as a number (PostgreSQL
            // has no `double precision = text`; SQLite applies the column's affinity).
            let probed: Vec<String> = chunk
                .iter()
                .map(|v| {
                    let ph = p.push(v.clone());
                    match (backend, f.kind()) {
                        (Backend::Postgres, Kind::Float) => {
                            format!("CAST({ph} AS DOUBLE PRECISION)")
                        }
                        (Backend::Postgres, Kind::Int) => format!("CAST({ph} AS BIGINT)"),
                        _ => format!("{}({ph})", backend.fold_fn()),
                    }
                })
                .collect();
            let expr = search_expr(backend, &column(&f.alias), f.kind());
            // Contacts with an identifier value are known by definition (and the indexes
            // are partial on known contacts).
            let sql = match backend {
                Backend::Sqlite => format!(
                    "SELECT id, {} FROM contacts WHERE date_identified IS NOT NULL AND {expr} IN ({})",
                    select.join(", "),
                    probed.join(", ")
                ),
                Backend::Postgres => format!(
                    "SELECT found.* FROM {} CROSS JOIN LATERAL \
                     (SELECT id, {} FROM contacts \
                      WHERE date_identified IS NOT NULL AND {expr} = probe.value OFFSET 0) AS found",
                    probe_values(&probed),
                    select.join(", ")
                ),
            };
            for row in db.fetch_all(&sql, p.values).await? {
                let id = row.i64("id");
                if seen.insert(id) {
                    let vals = ui
                        .iter()
                        .map(|f| (f.alias.clone(), row.get(&f.alias).clone()))
                        .collect();
                    out.push((id, vals));
                }
            }
        }
    }
    Ok(out)
}

/// A new contact row: system values plus field columns.
pub struct NewContact {
    pub date_added: i64,
    pub date_identified: Option<i64>,
    pub last_active: Option<i64>,
    pub created_by: Option<i64>,
    pub owner_id: Option<i64>,
    pub stage_id: Option<i64>,
    pub points: i64,
    pub preferred_profile_image: Option<String>,
    pub values: HashMap<String, Value>,
    /// The channel that creates it (and identifies it, when `date_identified` is set):
    /// the timeline derives its creation events from these (`store::events`).
    pub source: &'static str,
}

/// Inserts contacts with multi-row statements; returns their ids in input order.
pub async fn insert(
    db: &mut impl Exec,
    fields: &FieldSet,
    rows: &[NewContact],
) -> DbResult<Vec<i64>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Columns: the union of the field columns any row sets.
    let field_cols: Vec<&str> = fields
        .iter()
        .filter(|f| {
            f.storage() == Storage::Column
                && rows
                    .iter()
                    .any(|r| r.values.get(&f.alias).is_some_and(|v| !v.is_null()))
        })
        .map(|f| f.alias.as_str())
        .collect();
    let system = [
        "date_added",
        "date_modified",
        "date_identified",
        "last_active",
        "created_by",
        "modified_by",
        "owner_id",
        "stage_id",
        "points",
        "preferred_profile_image",
        "email_rev",
        "created_source",
        "identified_source",
    ];
    let ncols = system.len() + field_cols.len();
    let per_statement = (MAX_PARAMS / ncols).clamp(1, 500);
    let col_list: Vec<String> = system
        .iter()
        .map(|c| c.to_string())
        .chain(field_cols.iter().map(|a| column(a)))
        .collect();
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(per_statement) {
        let mut p = Params::default();
        let mut tuples = Vec::with_capacity(chunk.len());
        for r in chunk {
            let mut vals = vec![
                Value::Int(r.date_added),
                Value::Int(r.date_added),
                Value::from(r.date_identified),
                Value::from(r.last_active),
                Value::from(r.created_by),
                Value::from(r.created_by),
                Value::from(r.owner_id),
                Value::from(r.stage_id),
                Value::Int(r.points),
                Value::from(r.preferred_profile_image.clone()),
                Value::from(
                    r.values
                        .get("email")
                        .and_then(Value::to_text)
                        .map(|e| email_rev(&e)),
                ),
                Value::from(r.source),
                Value::from(r.date_identified.map(|_| r.source)),
            ];
            for alias in &field_cols {
                let kind = fields.get(alias).map_or(Kind::Text, |f| f.kind());
                vals.push(r.values.get(*alias).cloned().unwrap_or(Value::Null(kind)));
            }
            tuples.push(format!("({})", p.list(vals)));
        }
        let sql = format!(
            "INSERT INTO contacts ({}) VALUES {} RETURNING id",
            col_list.join(", "),
            tuples.join(", ")
        );
        ids.extend(db.inserted_ids(&sql, p.values).await?);
    }
    Ok(ids)
}

/// The columns of `contacts` that are not fields (a migration that adds one adds it
/// here): no field alias may take their names.
pub const NON_FIELD_COLUMNS: &[&str] = &[
    "id",
    "date_added",
    "date_modified",
    "date_identified",
    "created_by",
    "modified_by",
    "owner_id",
    "stage_id",
    "preferred_profile_image",
    "search_text",
    "email_rev",
    "created_source",
    "identified_source",
];

/// The key suffix searches use (`email:%@example.org`): the email's domain with its `@`,
/// lower-cased and reversed ("ada@Example.org" → "gro.elpmaxe@"). Keyed by domain, the
/// index takes a new contact at the end of its domain's run (a few hot pages) instead of
/// at a random place (a page written per contact). Folded as everything is
/// (`store::fold`); migrations 9 and 15 wrote the same.
pub fn email_rev(email: &str) -> String {
    let from = email.find('@').unwrap_or(0);
    super::fold::fold(&email[from..]).chars().rev().collect()
}

/// Sets columns of one contact. `sets` holds raw column names (quoted for fields).
pub async fn update(db: &mut impl Exec, id: i64, sets: Vec<(String, Value)>) -> DbResult<()> {
    if sets.is_empty() {
        return Ok(());
    }
    let sets = with_derived(sets);
    let mut p = Params::default();
    let assignments: Vec<String> = sets
        .into_iter()
        .map(|(col, v)| format!("{col} = {}", p.push(v)))
        .collect();
    let id_ph = p.push(id);
    let sql = format!(
        "UPDATE contacts SET {} WHERE id = {id_ph}",
        assignments.join(", ")
    );
    db.execute(&sql, p.values).await.map(drop)
}

/// Derived columns follow the ones they derive from.
fn with_derived(mut sets: Vec<(String, Value)>) -> Vec<(String, Value)> {
    if let Some((_, email)) = sets.iter().find(|(c, _)| c == "\"email\"" || c == "email") {
        let rev = Value::from(email.to_text().map(|e| email_rev(&e)));
        sets.push(("email_rev".to_owned(), rev));
    }
    sets
}

/// Updates many contacts: (id, column assignments). On SQLite one statement per distinct
/// set of columns (each statement is a round trip to SQLite's worker thread, which cost
/// more than the update itself for a batch of tracking hits); on PostgreSQL one per
/// contact, whose columns' types a `VALUES` list would have to spell out.
pub async fn update_many(
    db: &mut impl Exec,
    rows: Vec<(i64, Vec<(String, Value)>)>,
) -> DbResult<()> {
    if db.backend() == Backend::Postgres {
        for (id, sets) in rows {
            update(db, id, sets).await?;
        }
        return Ok(());
    }
    let mut groups: BTreeMap<Vec<String>, Vec<Vec<Value>>> = BTreeMap::new();
    for (id, sets) in rows {
        if sets.is_empty() {
            continue;
        }
        let (columns, mut values): (Vec<String>, Vec<Value>) =
            with_derived(sets).into_iter().unzip();
        values.insert(0, Value::Int(id));
        groups.entry(columns).or_default().push(values);
    }
    for (columns, rows) in groups {
        let names: Vec<String> = std::iter::once("id".to_owned())
            .chain((0..columns.len()).map(|i| format!("c{i}")))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let assignments: Vec<(&str, String)> = columns
            .iter()
            .enumerate()
            .map(|(i, col)| (col.as_str(), format!("v.c{i}")))
            .collect();
        let per_statement = (MAX_PARAMS / names.len()).clamp(1, 500);
        for chunk in rows.chunks(per_statement) {
            let mut p = Params::default();
            let cte = super::tracking::values_cte(&mut p, "v", &names, chunk.to_vec());
            let sql = super::tracking::update_by_id(db.backend(), &cte, "contacts", &assignments);
            db.execute(&sql, p.values).await?;
        }
    }
    Ok(())
}

/// Deletes contacts (and, by cascade, everything that hangs off them).
pub async fn delete(db: &mut impl Exec, ids: &[i64]) -> DbResult<u64> {
    let mut n = 0;
    for chunk in ids.chunks(1000) {
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        n += db
            .execute(
                &format!("DELETE FROM contacts WHERE id IN ({list})"),
                p.values,
            )
            .await?;
    }
    Ok(n)
}

/// The tags that `names` name, case-insensitively (`VIP` is the existing `vip`, as in
/// Mautic), created when missing (one per spelling that folds alike): each name's tag id
/// and the tag's own spelling. Where tags differ only in case (made before names were
/// folded) the oldest is taken.
pub async fn resolve_tags(
    db: &mut impl Exec,
    names: &[String],
) -> DbResult<HashMap<String, (i64, String)>> {
    use super::fold::fold;
    let missing_of = |found: &HashMap<String, (i64, String)>| {
        let mut seen = HashSet::new();
        names
            .iter()
            .filter(|n| {
                let key = fold(n);
                !found.contains_key(&key) && seen.insert(key)
            })
            .collect::<Vec<&String>>()
    };
    let mut found = folded_tags(db, names).await?;
    let mut missing = missing_of(&found);
    if !missing.is_empty() && db.backend() == Backend::Postgres {
        // Creating a tag takes its folded name's lock (`tags::lock_names`), then looks
        // again: a creation committed meanwhile is seen.
        let locked: Vec<&str> = missing.iter().map(|n| n.as_str()).collect();
        super::tags::lock_names(db, &locked).await?;
        found = folded_tags(db, names).await?;
        missing = missing_of(&found);
    }
    if !missing.is_empty() {
        for chunk in missing.chunks(500) {
            let mut p = Params::default();
            let tuples: Vec<String> = chunk
                .iter()
                .map(|n| format!("({})", p.push(n.as_str())))
                .collect();
            db.execute(
                &format!(
                    "INSERT INTO tags (tag) VALUES {} ON CONFLICT (tag) DO NOTHING",
                    tuples.join(", ")
                ),
                p.values,
            )
            .await?;
        }
        found = folded_tags(db, names).await?;
    }
    Ok(names
        .iter()
        .filter_map(|n| Some((n.clone(), found.get(&fold(n))?.clone())))
        .collect())
}

/// The tags matching `names` case-insensitively, keyed by folded name: the oldest of each.
/// The database folds both sides (names go as given, as in the duplicate lookup), so a
/// name always finds the tag spelled exactly so.
async fn folded_tags(
    db: &mut impl Exec,
    names: &[String],
) -> DbResult<HashMap<String, (i64, String)>> {
    let expr = super::fields::search_expr(db.backend(), "tag", Kind::Text);
    let fold = db.backend().fold_fn();
    let mut out: HashMap<String, (i64, String)> = HashMap::new();
    for chunk in names.chunks(500) {
        let mut p = Params::default();
        let list: Vec<String> = chunk
            .iter()
            .map(|k| format!("{fold}({})", p.push(k.as_str())))
            .collect();
        for row in db
            .fetch_all(
                &format!(
                    "SELECT id, tag FROM tags WHERE {expr} IN ({}) ORDER BY id",
                    list.join(", ")
                ),
                p.values,
            )
            .await?
        {
            let tag = row.text("tag");
            out.entry(super::fold::fold(&tag))
                .or_insert((row.i64("id"), tag));
        }
    }
    Ok(out)
}

/// Tag ids by exact name (the names a contact's rows hold).
pub async fn tag_ids(db: &mut impl Exec, names: &[String]) -> DbResult<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for chunk in names.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let list = p.list(chunk);
        for row in db
            .fetch_all(
                &format!("SELECT id, tag FROM tags WHERE tag IN ({list})"),
                p.values,
            )
            .await?
        {
            out.insert(row.text("tag"), row.i64("id"));
        }
    }
    Ok(out)
}

pub async fn link_tags(db: &mut impl Exec, pairs: &[(i64, i64)]) -> DbResult<()> {
    for chunk in pairs.chunks(1000) {
        let mut p = Params::default();
        let tuples: Vec<String> = chunk
            .iter()
            .map(|(c, t)| format!("({}, {})", p.push(*c), p.push(*t)))
            .collect();
        let sql = format!(
            "INSERT INTO contact_tags (contact_id, tag_id) VALUES {} ON CONFLICT DO NOTHING",
            tuples.join(", ")
        );
        db.execute(&sql, p.values).await?;
    }
    Ok(())
}

pub async fn unlink_tags(db: &mut impl Exec, pairs: &[(i64, i64)]) -> DbResult<()> {
    for (contact, tag) in pairs {
        db.execute(
            "DELETE FROM contact_tags WHERE contact_id = $1 AND tag_id = $2",
            params![*contact, *tag],
        )
        .await?;
    }
    Ok(())
}

/// Records that a contact was seen from an IP; true when the address is new for it.
/// Records that contacts were seen from addresses at `now`: (contact id, ip) pairs, in a
/// few statements. Answers the pairs seen for the first time.
pub async fn touch_ips(
    db: &mut impl Exec,
    pairs: &[(i64, String)],
    now: i64,
) -> DbResult<HashSet<(i64, String)>> {
    let unique: Vec<&(i64, String)> = pairs.iter().collect::<HashSet<_>>().into_iter().collect();
    let mut known = HashSet::new();
    let mut ids: Vec<i64> = unique.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(1000) {
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        for r in db
            .fetch_all(
                &format!("SELECT contact_id, ip FROM contact_ips WHERE contact_id IN ({list})"),
                p.values,
            )
            .await?
        {
            known.insert((r.i64("contact_id"), r.text("ip")));
        }
    }
    for chunk in unique.chunks(500) {
        let mut p = Params::default();
        let tuples: Vec<String> = chunk
            .iter()
            .map(|(id, ip)| format!("({}, {}, {now}, {now})", p.push(*id), p.push(ip.as_str())))
            .collect();
        db.execute(
            &format!(
                "INSERT INTO contact_ips (contact_id, ip, first_seen, last_seen) VALUES {} \
                 ON CONFLICT (contact_id, ip) DO UPDATE SET last_seen = excluded.last_seen",
                tuples.join(", ")
            ),
            p.values,
        )
        .await?;
    }
    Ok(unique
        .into_iter()
        .filter(|pair| !known.contains(*pair))
        .cloned()
        .collect())
}

pub struct IpRow {
    pub ip: String,
    pub first_seen: i64,
    pub last_seen: i64,
}

pub async fn ips_of(db: &mut impl Exec, ids: &[i64]) -> DbResult<HashMap<i64, Vec<IpRow>>> {
    let mut out: HashMap<i64, Vec<IpRow>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let sql = format!(
            "SELECT contact_id, ip, first_seen, last_seen FROM contact_ips WHERE contact_id IN ({list}) ORDER BY last_seen DESC"
        );
        for r in db.fetch_all(&sql, p.values).await? {
            out.entry(r.i64("contact_id")).or_default().push(IpRow {
                ip: r.text("ip"),
                first_seen: r.i64("first_seen"),
                last_seen: r.i64("last_seen"),
            });
        }
    }
    Ok(out)
}

pub struct DncRow {
    pub id: i64,
    pub contact_id: i64,
    pub channel: String,
    pub channel_id: Option<i64>,
    pub reason: i64,
    pub comments: String,
    pub date_added: i64,
}

pub async fn dnc_of(db: &mut impl Exec, ids: &[i64]) -> DbResult<HashMap<i64, Vec<DncRow>>> {
    let mut out: HashMap<i64, Vec<DncRow>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let sql = format!(
            "SELECT id, contact_id, channel, channel_id, reason, comments, date_added FROM contact_dnc
             WHERE contact_id IN ({list}) ORDER BY id"
        );
        for r in db.fetch_all(&sql, p.values).await? {
            out.entry(r.i64("contact_id")).or_default().push(DncRow {
                id: r.i64("id"),
                contact_id: r.i64("contact_id"),
                channel: r.text("channel"),
                channel_id: r.opt_i64("channel_id"),
                reason: r.i64("reason"),
                comments: r.text("comments"),
                date_added: r.i64("date_added"),
            });
        }
    }
    Ok(out)
}

/// Adds or updates the contact's do-not-contact record for a channel. Returns the previous
/// reason, if there was a record.
pub async fn upsert_dnc(
    db: &mut impl Exec,
    contact_id: i64,
    channel: &str,
    channel_id: Option<i64>,
    reason: i64,
    comments: &str,
    now: i64,
) -> DbResult<Option<i64>> {
    let before = db
        .fetch_optional(
            "SELECT reason FROM contact_dnc WHERE contact_id = $1 AND channel = $2",
            params![contact_id, channel],
        )
        .await?
        .map(|r| r.i64("reason"));
    db.execute(
        "INSERT INTO contact_dnc (contact_id, channel, channel_id, reason, comments, date_added) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (contact_id, channel) DO UPDATE SET reason = excluded.reason, comments = excluded.comments,
             channel_id = excluded.channel_id",
        params![contact_id, channel, channel_id, reason, comments, now],
    )
    .await?;
    Ok(before)
}

pub async fn remove_dnc(db: &mut impl Exec, contact_id: i64, channel: &str) -> DbResult<bool> {
    Ok(db
        .execute(
            "DELETE FROM contact_dnc WHERE contact_id = $1 AND channel = $2",
            params![contact_id, channel],
        )
        .await?
        > 0)
}

pub struct UtmRow {
    pub id: i64,
    pub contact_id: i64,
    pub date_added: i64,
    pub fields: [(&'static str, Option<String>); 9],
    pub query: String,
}

pub const UTM_COLUMNS: [&str; 9] = [
    "utm_campaign",
    "utm_content",
    "utm_medium",
    "utm_source",
    "utm_term",
    "url",
    "referer",
    "remote_host",
    "user_agent",
];

/// A UTM row to insert: contact, time, the nine UTM values, the query string.
pub type NewUtm = (i64, i64, [Option<String>; 9], String);

/// Inserts UTM rows with multi-row statements; returns their ids in the given order.
pub async fn insert_utms(db: &mut impl Exec, rows: Vec<NewUtm>) -> DbResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut p = Params::default();
        let tuples: Vec<String> = rows
            .by_ref()
            .take(1000)
            .map(|(contact_id, at, values, query)| {
                let mut phs = vec![p.push(contact_id), p.push(at)];
                phs.extend(values.into_iter().map(|v| p.push(v)));
                phs.push(p.push(query));
                format!("({})", phs.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO contact_utm_tags (contact_id, date_added, {}, query) VALUES {} RETURNING id",
            UTM_COLUMNS.join(", "),
            tuples.join(", ")
        );
        ids.extend(db.inserted_ids(&sql, p.values).await?);
    }
    Ok(ids)
}

/// Deletes one set of a contact's UTM tags; false when it has none with that id.
pub async fn delete_utm(db: &mut impl Exec, contact_id: i64, utm_id: i64) -> DbResult<bool> {
    let n = db
        .execute(
            "DELETE FROM contact_utm_tags WHERE id = $1 AND contact_id = $2",
            params![utm_id, contact_id],
        )
        .await?;
    Ok(n > 0)
}

pub async fn utm_of(db: &mut impl Exec, ids: &[i64]) -> DbResult<HashMap<i64, Vec<UtmRow>>> {
    let mut out: HashMap<i64, Vec<UtmRow>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        if chunk.is_empty() {
            continue;
        }
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let sql = format!(
            "SELECT id, contact_id, date_added, {}, query FROM contact_utm_tags WHERE contact_id IN ({list}) ORDER BY id",
            UTM_COLUMNS.join(", ")
        );
        for r in db.fetch_all(&sql, p.values).await? {
            let fields = UTM_COLUMNS.map(|c| (c, r.opt_text(c)));
            out.entry(r.i64("contact_id")).or_default().push(UtmRow {
                id: r.i64("id"),
                contact_id: r.i64("contact_id"),
                date_added: r.i64("date_added"),
                fields,
                query: r.text("query"),
            });
        }
    }
    Ok(out)
}

/// A change of a contact's points, as Mautic's API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointsChange {
    Add(i64),
    Times(i64),
    /// By a divisor other than 0; the quotient is truncated, as PHP's `(int)` does.
    Divide(i64),
}

impl PointsChange {
    /// The points after the change, kept within ±`MAX_POINTS`.
    pub fn apply(self, before: i64) -> i64 {
        let after = match self {
            PointsChange::Add(delta) => before.saturating_add(delta),
            PointsChange::Times(factor) => before.saturating_mul(factor),
            PointsChange::Divide(divisor) => before.checked_div(divisor).unwrap_or(before),
        };
        after.clamp(-MAX_POINTS, MAX_POINTS)
    }
}

/// Changes a contact's points; returns the points before and after, or `None` for an
/// unknown contact. Points stay within what a save accepts (fewer than 16 digits), so a
/// contact read back can be saved back: the change made may be less than asked.
pub async fn change_points(
    db: &mut impl Exec,
    id: i64,
    change: PointsChange,
    now: i64,
) -> DbResult<Option<(i64, i64)>> {
    // Read and changed under the row's lock (SQLite: the writer's), so no other change
    // comes between.
    lock_rows(db, &[id], RowLock::Update).await?;
    let Some(before) = db
        .fetch_i64("SELECT points FROM contacts WHERE id = $1", params![id])
        .await?
    else {
        return Ok(None);
    };
    let after = change.apply(before);
    db.execute(
        "UPDATE contacts SET points = $1, date_modified = $2 WHERE id = $3",
        params![after, now, id],
    )
    .await?;
    Ok(Some((before, after)))
}

/// The largest number of points a contact holds (what `values` accepts: below 10^15).
pub const MAX_POINTS: i64 = 999_999_999_999_999;

/// How many contacts are (known, anonymous), from the counters the triggers keep.
pub async fn counts(db: &mut impl Exec) -> DbResult<(i64, i64)> {
    let rows = match db.backend() {
        super::db::Backend::Sqlite => {
            db.fetch_all("SELECT kind, n FROM contact_counts", vec![])
                .await?
        }
        super::db::Backend::Postgres => {
            let rows = db
                .fetch_all("SELECT kind, SUM(delta)::bigint AS n, COUNT(*) AS parts FROM contact_count_deltas GROUP BY kind", vec![])
                .await?;
            if rows.iter().map(|r| r.i64("parts")).sum::<i64>() > 256 {
                // Fold the deltas so the sum stays cheap. Concurrent folds cannot count twice:
                // each deleted row is returned to exactly one of them.
                db.execute(
                    "WITH moved AS (DELETE FROM contact_count_deltas RETURNING kind, delta)
                     INSERT INTO contact_count_deltas (kind, delta) SELECT kind, SUM(delta) FROM moved GROUP BY kind",
                    vec![],
                )
                .await?;
            }
            rows
        }
    };
    let get = |kind: &str| {
        rows.iter()
            .find(|r| r.text("kind") == kind)
            .map_or(0, |r| r.i64("n"))
    };
    Ok((get("known"), get("anonymous")))
}
