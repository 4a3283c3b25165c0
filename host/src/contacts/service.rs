//! The one write path for contacts. The API (single and batch), the admin, imports,
//! tracking and forms all come through `save`, so validation, duplicate matching,
//! identification and the timeline events they imply happen the same way everywhere.
//!
//! A call takes many items and costs a few statements: inputs are validated first,
//! candidates for duplicate matching are fetched in one query per identifier field,
//! items are applied in memory in order (a later item sees an earlier one's contact),
//! then everything is written with multi-row statements inside the caller's
//! transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::fields::{FieldDef, FieldSet, FieldType, Storage};
use super::input::{ContactInput, DncInput, Problems, TagChanges, UtmInput};
use super::{Contact, is_identifying, values};
use crate::config::UniqueIdentifierOperator;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{self, Exec, Store, Tx, Value};
use crate::timeline::{NewEvent, keys};

/// Who or what is writing; recorded with the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Api,
    Admin,
    Import,
    Tracking,
    Form,
    /// A plugin's host call.
    Plugin,
}

impl Source {
    /// Whether a save from here must fill the required fields. A visitor, a form
    /// submission or a plugin's incoming event creates the contact it is about, known or
    /// not, as in Mautic; the API, the admin and imports state contacts and are held to
    /// the field rules.
    pub fn enforces_required(self) -> bool {
        matches!(self, Source::Api | Source::Admin | Source::Import)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Admin => "admin",
            Source::Import => "import",
            Source::Tracking => "tracking",
            Source::Form => "form",
            Source::Plugin => "plugin",
        }
    }
}

#[derive(Clone)]
pub struct SaveContext {
    /// Shared, so a save queued for its group (`save_group`) keeps it without a copy.
    pub fields: Arc<FieldSet>,
    pub operator: UniqueIdentifierOperator,
    /// The user writing, if any.
    pub actor: Option<i64>,
    pub source: Source,
    pub now: i64,
}

/// What an item asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Create, or update the contact matching the unique identifiers (Mautic's `new`).
    Upsert,
    /// Always create (the admin after seeing the duplicate warning).
    Create,
    /// Change the given fields of an existing contact.
    Patch(i64),
    /// Replace: fields not sent are cleared; creates a new contact when the id is unknown.
    Put(i64),
    /// Create unless a contact matches the unique identifiers (stored, or created by an
    /// earlier item of the call); then write nothing (an import's "skip if it exists").
    Insert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saved {
    pub id: i64,
    pub created: bool,
    /// An `Insert` that matched contact `id` and wrote nothing.
    pub skipped: bool,
}

/// Saves items: committed before this returns, on SQLite in one transaction with the
/// saves that queued alongside (`save_group`). The outer error is a database failure
/// (nothing was written); inner errors are per item (that item wrote nothing).
pub async fn save(
    state: &AppState,
    ctx: &SaveContext,
    items: Vec<(Target, ContactInput)>,
) -> AppResult<Vec<AppResult<Saved>>> {
    state.saves.save(&state.store, ctx, items).await
}

/// One attempt of `in_transaction`'s work (boxed: a closure's future that borrows the
/// transaction cannot be named otherwise, and must stay `Send` for spawned callers).
pub(crate) type Attempt<'t, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = AppResult<T>> + Send + 't>>;

/// Says that an attempt's transaction (`'t`) lives no longer than what its work borrows
/// from the caller (`'a`), so that work may borrow it.
pub(crate) type Within<'t, 'a> = std::marker::PhantomData<&'t &'a ()>;

/// Runs `work` in a transaction of its own and commits it. On PostgreSQL, where writes
/// lock rows concurrently, a transaction aborted to break a deadlock wrote nothing and is
/// run again, twice at most; `work` is told whether an attempt is the last one (so it can
/// give away what it would otherwise keep for another try).
pub(crate) async fn in_transaction<'a, T>(
    store: &Store,
    mut work: impl for<'t> FnMut(&'t mut Tx, bool, Within<'t, 'a>) -> Attempt<'t, T>,
) -> AppResult<T> {
    let attempts = match store.backend() {
        store::Backend::Postgres => 3,
        store::Backend::Sqlite => 1,
    };
    for attempt in 1.. {
        let last = attempt == attempts;
        let result = async {
            let mut tx = store.begin().await?;
            let out = work(&mut tx, last, std::marker::PhantomData).await?;
            tx.commit().await?;
            AppResult::Ok(out)
        }
        .await;
        match result {
            Err(e) if !last && e.is_deadlock() => {
                tracing::warn!("a write was chosen to break a deadlock; running it again");
            }
            result => return result,
        }
    }
    unreachable!("the last attempt returns")
}

/// Saves items in a transaction of their own.
pub(super) async fn save_alone(
    store: &Store,
    ctx: &SaveContext,
    items: Vec<(Target, ContactInput)>,
) -> AppResult<Vec<AppResult<Saved>>> {
    let mut items = Some(items);
    in_transaction(store, |tx, last, _| {
        let batch = match last {
            true => items.take(),
            false => items.clone(),
        }
        .expect("kept until the last attempt");
        Box::pin(save_in(tx, ctx, batch))
    })
    .await
}

/// A validated item.
struct Prepared<'f> {
    target: Target,
    sets: Vec<(&'f FieldDef, Option<Value>)>,
    overwrite_blank: bool,
    owner: Option<Option<i64>>,
    stage: Option<Option<i64>>,
    tags: TagChanges,
    ip: Option<String>,
    dnc: Vec<DncInput>,
    utm: Vec<UtmInput>,
    profile_image: Option<Option<String>>,
}

/// A contact being written: where it started and where it is now.
struct Work {
    original: Option<Contact>,
    state: Contact,
    events: Vec<NewEvent>,
    ips: Vec<String>,
    dnc: Vec<DncInput>,
    utm: Vec<UtmInput>,
}

impl Work {
    fn is_new(&self) -> bool {
        self.original.is_none()
    }
}

/// Case-folded text of an identifier value (`None` when empty), as the database folds
/// it (`store::fold`), so items of one batch match each other exactly as separate requests
/// match in the database. The database is asked with the values as given
/// (`identifier_values`) and folds both sides itself.
fn fold_value(v: &Value) -> Option<String> {
    let s = v.to_text()?;
    Some(store::fold::fold(&s)).filter(|s| !s.is_empty())
}

/// The unique-identifier values of an item as given, for the database's lookup.
fn identifier_values(
    fields: &FieldSet,
    sets: &[(&FieldDef, Option<Value>)],
) -> Vec<(String, Value)> {
    sets.iter()
        .filter(|(f, _)| f.is_unique_identifier && fields.get(&f.alias).is_some())
        .filter_map(|(f, v)| {
            let text = v.as_ref()?.to_text().filter(|t| !t.is_empty())?;
            Some((f.alias.clone(), Value::Text(text)))
        })
        .collect()
}

/// The same values folded, as they are matched in memory.
fn identifier_probe(
    fields: &FieldSet,
    sets: &[(&FieldDef, Option<Value>)],
) -> Vec<(String, String)> {
    identifier_values(fields, sets)
        .into_iter()
        .filter_map(|(alias, v)| Some((alias, fold_value(&v)?)))
        .collect()
}

/// The key of the cross-process lock on one identifier value (`store::locks`).
fn lock_key(alias: &str, folded: &str) -> String {
    format!("{alias}\u{0}{folded}")
}

/// Locks a stored contact's identifier values, as a save of them would (a merge moves
/// them from one contact to the other).
pub(crate) async fn lock_identifiers_of(
    tx: &mut Tx,
    fields: &FieldSet,
    contacts: &[Contact],
) -> AppResult<()> {
    let keys: Vec<String> = contacts
        .iter()
        .flat_map(|c| {
            fields.unique_identifiers().filter_map(|f| {
                let v = c.value(&f.alias).and_then(fold_value)?;
                Some(lock_key(&f.alias, &v))
            })
        })
        .collect();
    store::locks::identifier_locks(tx, &keys).await?;
    Ok(())
}

fn index_identifiers(
    fields: &FieldSet,
    index: &mut HashMap<(String, String), Vec<usize>>,
    at: usize,
    c: &Contact,
) {
    for f in fields.unique_identifiers() {
        if let Some(v) = c.value(&f.alias).and_then(fold_value) {
            let slot = index.entry((f.alias.clone(), v)).or_default();
            if !slot.contains(&at) {
                slot.push(at);
            }
        }
    }
}

/// The AND/OR rule: does a contact with these values match the probe?
fn matches(op: UniqueIdentifierOperator, probe: &[(String, String)], contact: &Contact) -> bool {
    if probe.is_empty() {
        return false;
    }
    let eq = |(alias, want): &(String, String)| {
        contact
            .value(alias)
            .and_then(fold_value)
            .is_some_and(|have| &have == want)
    };
    match op {
        UniqueIdentifierOperator::And => probe.iter().all(eq),
        UniqueIdentifierOperator::Or => probe.iter().any(eq),
    }
}

/// Validates one input against the fields.
fn prepare<'f>(
    fields: &'f FieldSet,
    target: Target,
    input: ContactInput,
) -> AppResult<Prepared<'f>> {
    let mut problems = Problems::default();
    let mut sets = Vec::with_capacity(input.values.len());
    for (alias, raw) in &input.values {
        let Some(field) = fields.get(alias) else {
            problems.add(alias, "is not a contact field");
            continue;
        };
        match values::normalize(field, raw) {
            Ok(v) => sets.push((field, v)),
            Err(m) => problems.add(alias, m),
        }
    }
    problems.into_result()?;
    let overwrite_blank = input.overwrite_with_blank || matches!(target, Target::Put(_));
    Ok(Prepared {
        target,
        sets,
        overwrite_blank,
        owner: input.owner,
        stage: input.stage,
        tags: input.tags,
        ip: input.ip_address,
        dnc: input.dnc,
        utm: input.utm,
        profile_image: input.profile_image,
    })
}

/// Saves items inside `tx`. See `save`.
pub async fn save_in(
    tx: &mut Tx,
    ctx: &SaveContext,
    items: Vec<(Target, ContactInput)>,
) -> AppResult<Vec<AppResult<Saved>>> {
    let fields: &FieldSet = &ctx.fields;
    let mut results: Vec<Option<AppResult<Saved>>> = (0..items.len()).map(|_| None).collect();

    // 1. Validate.
    let mut prepared: Vec<(usize, Prepared)> = Vec::with_capacity(items.len());
    for (i, (target, input)) in items.into_iter().enumerate() {
        match prepare(fields, target, input) {
            Ok(p) => prepared.push((i, p)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }

    // 2. Owners and stages must exist.
    let owner_ids: Vec<i64> = prepared
        .iter()
        .filter_map(|(_, p)| p.owner.flatten())
        .collect();
    let stage_ids: Vec<i64> = prepared
        .iter()
        .filter_map(|(_, p)| p.stage.flatten())
        .collect();
    let known_owners = store::users::existing_ids(tx, &owner_ids).await?;
    let known_stages = store::stages::existing_ids(tx, &stage_ids).await?;
    prepared.retain(|(i, p)| {
        let mut problems = Problems::default();
        if let Some(Some(o)) = p.owner
            && !known_owners.contains(&o)
        {
            problems.add("owner", format!("there is no user with id {o}"));
        }
        if let Some(Some(s)) = p.stage
            && !known_stages.contains(&s)
        {
            problems.add("stage", format!("there is no stage with id {s}"));
        }
        match problems.into_result() {
            Ok(()) => true,
            Err(e) => {
                results[*i] = Some(Err(e));
                false
            }
        }
    });

    // 3. Fetch what the items refer to: ids, and duplicate candidates.
    let mut probes: HashMap<String, Vec<Value>> = HashMap::new();
    let mut lock_keys: Vec<String> = Vec::new();
    for (_, p) in prepared
        .iter()
        .filter(|(_, p)| matches!(p.target, Target::Upsert | Target::Insert | Target::Put(_)))
    {
        for (alias, key) in identifier_probe(fields, &p.sets) {
            lock_keys.push(lock_key(&alias, &key));
        }
        for (alias, value) in identifier_values(fields, &p.sets) {
            probes.entry(alias).or_default().push(value);
        }
    }
    // Concurrent writers on PostgreSQL must not both miss and both insert the same email.
    store::locks::identifier_locks(tx, &lock_keys).await?;
    let candidates = store::contacts::find_by_identifiers(tx, fields, &probes).await?;
    let mut wanted: Vec<i64> = candidates.iter().map(|(id, _)| *id).collect();
    wanted.extend(prepared.iter().filter_map(|(_, p)| match p.target {
        Target::Patch(id) | Target::Put(id) => Some(id),
        _ => None,
    }));
    wanted.sort_unstable();
    wanted.dedup();
    store::contacts::lock_rows(tx, &wanted, store::contacts::RowLock::Update).await?;
    let loaded = store::contacts::load(tx, fields, &wanted).await?;

    let mut work: Vec<Work> = loaded
        .into_iter()
        .map(|c| Work {
            original: Some(c.clone()),
            state: c,
            events: Vec::new(),
            ips: Vec::new(),
            dnc: Vec::new(),
            utm: Vec::new(),
        })
        .collect();
    let mut by_id: HashMap<i64, usize> = work
        .iter()
        .enumerate()
        .map(|(i, w)| (w.state.id, i))
        .collect();
    // (alias, folded value) → records having it, so matching a batch is not quadratic.
    let mut ident_index: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, w) in work.iter().enumerate() {
        index_identifiers(fields, &mut ident_index, i, &w.state);
    }
    // Which item created which new record.
    let mut created_by: HashMap<usize, usize> = HashMap::new();
    // Each item's record, and whether it was skipped (an `Insert` that matched a contact
    // and writes nothing).
    let mut item_work: Vec<(usize, usize, bool)> = Vec::new();

    // 4. Apply items in order.
    for (i, p) in prepared {
        let existing = match p.target {
            Target::Patch(id) => match by_id.get(&id) {
                Some(w) => Some(*w),
                None => {
                    results[i] = Some(Err(AppError::not_found()));
                    continue;
                }
            },
            Target::Create => None,
            // A PUT to an id that names no contact creates one unless its identifiers
            // match a contact, which it then replaces (Mautic's `getNewEntity`).
            Target::Put(id) => match by_id.get(&id) {
                Some(w) => Some(*w),
                None => matching_record(ctx.operator, fields, &ident_index, &work, &p.sets),
            },
            Target::Upsert | Target::Insert => {
                matching_record(ctx.operator, fields, &ident_index, &work, &p.sets)
            }
        };
        if let (Target::Insert, Some(w)) = (p.target, existing) {
            item_work.push((i, w, true));
            continue;
        }
        let is_create = existing.is_none();
        let mut candidate = match existing {
            Some(w) => work[w].state.clone(),
            None => Contact {
                date_added: ctx.now,
                date_modified: ctx.now,
                created_by: ctx.actor,
                ..Contact::default()
            },
        };
        let mut events = Vec::new();
        match apply(ctx, &p, &mut candidate, is_create, &mut events) {
            Ok(()) => {}
            Err(e) => {
                results[i] = Some(Err(e));
                continue;
            }
        }
        let w = match existing {
            Some(w) => w,
            None => {
                work.push(Work {
                    original: None,
                    state: Contact::default(),
                    events: Vec::new(),
                    ips: Vec::new(),
                    dnc: Vec::new(),
                    utm: Vec::new(),
                });
                created_by.insert(work.len() - 1, i);
                work.len() - 1
            }
        };
        index_identifiers(fields, &mut ident_index, w, &candidate);
        let record = &mut work[w];
        record.state = candidate;
        record.events.extend(events);
        record.ips.extend(p.ip);
        record.dnc.extend(p.dnc);
        record.utm.extend(p.utm);
        if record.state.id != 0 {
            by_id.insert(record.state.id, w);
        }
        item_work.push((i, w, false));
    }

    // 5. Write.
    let new_idx: Vec<usize> = (0..work.len()).filter(|w| work[*w].is_new()).collect();
    // A new record's values are needed only to insert it: moved, not copied.
    let rows: Vec<store::contacts::NewContact> = new_idx
        .iter()
        .map(|w| {
            let s = &mut work[*w].state;
            store::contacts::NewContact {
                date_added: s.date_added,
                date_identified: s.date_identified,
                last_active: s.last_active,
                created_by: s.created_by,
                owner_id: s.owner_id,
                stage_id: s.stage_id,
                points: s.points,
                preferred_profile_image: s.preferred_profile_image.clone(),
                values: std::mem::take(&mut s.values),
                source: ctx.source.as_str(),
            }
        })
        .collect();
    let ids = store::contacts::insert(tx, fields, &rows).await?;
    for (w, id) in new_idx.iter().zip(ids) {
        work[*w].state.id = id;
    }
    let updates = work
        .iter()
        .filter_map(|w| {
            w.original
                .as_ref()
                .map(|original| (w.state.id, changed_columns(fields, original, &w.state, ctx)))
        })
        .collect();
    store::contacts::update_many(tx, updates).await?;
    write_tags(tx, &mut work, ctx.now).await?;
    let ip_pairs: Vec<(i64, String)> = work
        .iter()
        .flat_map(|w| w.ips.iter().map(|ip| (w.state.id, ip.clone())))
        .collect();
    let mut first_seen = store::contacts::touch_ips(tx, &ip_pairs, ctx.now).await?;
    let utms: Vec<(i64, UtmInput)> = work
        .iter_mut()
        .flat_map(|w| {
            let id = w.state.id;
            std::mem::take(&mut w.utm).into_iter().map(move |u| (id, u))
        })
        .collect();
    let utm_rows = utms
        .iter()
        .map(|(id, u)| {
            let (values, query) = utm_values(u);
            (*id, ctx.now, values, query)
        })
        .collect();
    let utm_ids = store::contacts::insert_utms(tx, utm_rows).await?;
    // Each contact's UTM events keep their place among its other events (below).
    let mut utm_events: HashMap<i64, Vec<NewEvent>> = HashMap::new();
    for ((id, u), utm_id) in utms.iter().zip(utm_ids) {
        utm_events
            .entry(*id)
            .or_default()
            .push(NewEvent::new(*id, keys::UTM, ctx.now, utm_json(u)).ref_id(utm_id));
    }
    let mut events = Vec::new();
    for w in &mut work {
        let id = w.state.id;
        for ip in std::mem::take(&mut w.ips) {
            if let Some((_, ip)) = first_seen.take(&(id, ip)) {
                events.push(NewEvent::new(
                    id,
                    keys::IP_ADDED,
                    ctx.now,
                    json!({ "ip": ip }),
                ));
            }
        }
        for d in std::mem::take(&mut w.dnc) {
            if d.reason == super::input::DNC_CONTACTABLE {
                if store::contacts::remove_dnc(tx, id, &d.channel).await? {
                    events.push(NewEvent::new(
                        id,
                        keys::DNC,
                        ctx.now,
                        json!({ "channel": d.channel, "removed": true }),
                    ));
                }
                continue;
            }
            let before = store::contacts::upsert_dnc(
                tx,
                id,
                &d.channel,
                d.channel_id,
                d.reason,
                &d.comments,
                ctx.now,
            )
            .await?;
            if before == Some(d.reason) {
                continue; // already so: no new event, as in Mautic
            }
            events.push(NewEvent::new(
                id,
                keys::DNC,
                ctx.now,
                json!({
                    "channel": d.channel, "reason": d.reason, "comments": d.comments,
                }),
            ));
        }
        events.extend(utm_events.remove(&id).unwrap_or_default());
        for mut e in std::mem::take(&mut w.events) {
            e.contact_id = id;
            events.push(e);
        }
    }
    for e in &mut events {
        e.source
            .get_or_insert_with(|| ctx.source.as_str().to_owned());
    }
    store::events::insert(tx, &events).await?;

    for (i, w, skipped) in item_work {
        let created = created_by.get(&w) == Some(&i);
        results[i] = Some(Ok(Saved {
            id: work[w].state.id,
            created,
            skipped,
        }));
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every item has a result"))
        .collect())
}

/// Applies a validated item to a contact (in memory), with the events it implies.
fn apply(
    ctx: &SaveContext,
    p: &Prepared<'_>,
    c: &mut Contact,
    is_create: bool,
    events: &mut Vec<NewEvent>,
) -> AppResult<()> {
    let fields: &FieldSet = &ctx.fields;
    let points_before = c.points;
    let stage_before = c.stage_id;
    let mut problems = Problems::default();
    let sent: HashSet<&str> = p.sets.iter().map(|(f, _)| f.alias.as_str()).collect();

    for (field, value) in &p.sets {
        match value {
            Some(v) => set_value(c, field, v.clone()),
            None if p.overwrite_blank => {
                if field.is_required && ctx.source.enforces_required() {
                    problems.add(&field.alias, "is required");
                }
                set_value(c, field, values::null_for(field));
            }
            None => {}
        }
    }
    if let Target::Put(_) = p.target {
        // Replace: every field not sent is cleared.
        for field in fields
            .iter()
            .filter(|f| f.storage() == Storage::Column && !sent.contains(f.alias.as_str()))
        {
            set_value(c, field, values::null_for(field));
        }
    }
    if is_create {
        for field in fields.iter().filter(|f| !sent.contains(f.alias.as_str())) {
            let Some(default) = field
                .default_value
                .as_deref()
                .filter(|d| !d.trim().is_empty())
            else {
                continue;
            };
            if identifying_field(field) || c.field_value(field).to_text().is_some() {
                continue;
            }
            if let Ok(Some(v)) = values::normalize(field, &Json::String(default.to_owned())) {
                set_value(c, field, v);
            }
        }
    }
    if (is_create || matches!(p.target, Target::Put(_))) && ctx.source.enforces_required() {
        for field in fields
            .iter()
            .filter(|f| f.is_required && f.storage() == Storage::Column)
        {
            if c.value(&field.alias)
                .and_then(Value::to_text)
                .is_none_or(|s| s.is_empty())
            {
                problems.add(&field.alias, "is required");
            }
        }
    }
    problems.into_result()?;

    if let Some(owner) = p.owner {
        c.owner_id = owner;
    }
    if let Some(stage) = p.stage {
        c.stage_id = stage;
    }
    if let Some(image) = &p.profile_image {
        c.preferred_profile_image = image.clone();
    }
    // Tags compare case-insensitively, as in Mautic: `VIP` is the `vip` a contact has.
    // Removals come last, as in Mautic: `["VIP", "-vip"]` leaves it off.
    for tag in &p.tags.add {
        if !c.tags.iter().any(|t| store::fold::same(t, tag)) {
            c.tags.push(tag.clone());
        }
    }
    c.tags
        .retain(|t| !p.tags.remove.iter().any(|r| store::fold::same(t, r)));

    // A contact's creation and identification are not stored as events: its row says
    // when and by which channel (`created_source`, `identified_source`), and the timeline
    // derives `lead.create`, `lead.apiadded` and `lead.identified` from it. A new
    // contact's first points and tags are its state at creation, not changes: no
    // `point.gained` or `lead.tags` event.
    if c.date_identified.is_none() && is_identifying(fields, &c.values) {
        c.date_identified = Some(ctx.now);
    }
    if c.points != points_before && !is_create {
        events.push(NewEvent::new(
            0,
            keys::POINTS,
            ctx.now,
            json!({
                "delta": c.points - points_before, "points": c.points, "action": ctx.source.as_str(),
            }),
        ));
    }
    if c.stage_id != stage_before {
        events.push(NewEvent::new(
            0,
            keys::STAGE,
            ctx.now,
            json!({ "from": stage_before, "to": c.stage_id }),
        ));
    }
    c.modified_by = ctx.actor.or(c.modified_by);
    Ok(())
}

/// Fields a default value never fills (Mautic: defaults must not identify anyone).
fn identifying_field(f: &FieldDef) -> bool {
    f.is_unique_identifier
        || ["firstname", "lastname", "email", "company"].contains(&f.alias.as_str())
        || f.group == "social"
        || f.field_type == FieldType::Email
}

fn set_value(c: &mut Contact, field: &FieldDef, v: Value) {
    match field.storage() {
        Storage::Points => c.points = v.as_i64().unwrap_or(0),
        Storage::Timestamp => c.last_active = v.as_i64(),
        Storage::Column => {
            c.values.insert(field.alias.clone(), v);
        }
    }
}

/// The columns that differ between the stored and the new state.
fn changed_columns(
    fields: &FieldSet,
    before: &Contact,
    after: &Contact,
    ctx: &SaveContext,
) -> Vec<(String, Value)> {
    let mut sets = Vec::new();
    // Compared in place: only changed values are copied (a tracking hit changes one or two
    // of some thirty columns).
    for f in fields.iter().filter(|f| f.storage() == Storage::Column) {
        let (a, b) = (before.values.get(&f.alias), after.values.get(&f.alias));
        let null = |v: Option<&Value>| v.is_none_or(Value::is_null);
        if a != b && !(null(a) && null(b)) {
            let b = b.cloned().unwrap_or(Value::Null(f.kind()));
            sets.push((store::fields::column(&f.alias), b));
        }
    }
    let system: [(&str, Value, Value); 6] = [
        (
            "points",
            Value::Int(before.points),
            Value::Int(after.points),
        ),
        (
            "last_active",
            Value::from(before.last_active),
            Value::from(after.last_active),
        ),
        (
            "owner_id",
            Value::from(before.owner_id),
            Value::from(after.owner_id),
        ),
        (
            "stage_id",
            Value::from(before.stage_id),
            Value::from(after.stage_id),
        ),
        (
            "date_identified",
            Value::from(before.date_identified),
            Value::from(after.date_identified),
        ),
        (
            "preferred_profile_image",
            Value::from(before.preferred_profile_image.clone()),
            Value::from(after.preferred_profile_image.clone()),
        ),
    ];
    for (col, a, b) in system {
        if a != b {
            sets.push((col.to_owned(), b));
        }
    }
    if before.date_identified.is_none() && after.date_identified.is_some() {
        sets.push((
            "identified_source".to_owned(),
            Value::from(ctx.source.as_str()),
        ));
    }
    let tags_changed = before.tags != after.tags;
    if !sets.is_empty() || tags_changed {
        sets.push(("date_modified".to_owned(), Value::Int(ctx.now)));
        if let Some(actor) = ctx.actor {
            sets.push(("modified_by".to_owned(), Value::Int(actor)));
        }
    }
    sets
}

/// The record an item's identifier values match: candidates from the identifier index,
/// then the exact AND/OR rule; the newest matching contact wins (new records are newest),
/// as in Mautic.
fn matching_record(
    operator: UniqueIdentifierOperator,
    fields: &FieldSet,
    ident_index: &HashMap<(String, String), Vec<usize>>,
    work: &[Work],
    sets: &[(&FieldDef, Option<Value>)],
) -> Option<usize> {
    let probe = identifier_probe(fields, sets);
    let mut candidates: Vec<usize> = probe
        .iter()
        .filter_map(|key| ident_index.get(key))
        .flatten()
        .copied()
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    candidates
        .into_iter()
        .filter(|idx| matches(operator, &probe, &work[*idx].state))
        .max_by_key(|idx| {
            if work[*idx].is_new() {
                (1, *idx as i64)
            } else {
                (0, work[*idx].state.id)
            }
        })
}

/// Links and unlinks tags for every record, with a `lead.tags` event per contact changed.
/// An added name takes the spelling of the tag it names (`VIP` → the existing `vip`).
async fn write_tags(tx: &mut Tx, work: &mut [Work], now: i64) -> AppResult<()> {
    let mut changes: Vec<(usize, Vec<String>, Vec<String>)> = Vec::new();
    for (i, w) in work.iter().enumerate() {
        let before: &[String] = w.original.as_ref().map_or(&[], |o| &o.tags);
        let added: Vec<String> = w
            .state
            .tags
            .iter()
            .filter(|t| !before.contains(t))
            .cloned()
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|t| !w.state.tags.contains(t))
            .cloned()
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            changes.push((i, added, removed));
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    // In the items' order: of two new spellings of one tag, the first named is created.
    let mut seen = HashSet::new();
    let names: Vec<String> = changes
        .iter()
        .flat_map(|(_, a, _)| a.iter())
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect();
    let tags = store::contacts::resolve_tags(tx, &names).await?;
    let mut removed_names: Vec<String> = changes
        .iter()
        .flat_map(|(_, _, r)| r.iter().cloned())
        .collect();
    removed_names.sort();
    removed_names.dedup();
    let removed_ids = store::contacts::tag_ids(tx, &removed_names).await?;
    let mut link = Vec::new();
    let mut unlink = Vec::new();
    for (i, added, removed) in &mut changes {
        let contact = work[*i].state.id;
        for name in added.iter_mut() {
            if let Some((id, spelling)) = tags.get(name) {
                link.push((contact, *id));
                if spelling != name {
                    if let Some(t) = work[*i].state.tags.iter_mut().find(|t| *t == name) {
                        t.clone_from(spelling);
                    }
                    name.clone_from(spelling);
                }
            }
        }
        unlink.extend(
            removed
                .iter()
                .filter_map(|t| removed_ids.get(t))
                .map(|t| (contact, *t)),
        );
        if work[*i].original.is_some() {
            work[*i].events.push(NewEvent::new(
                contact,
                keys::TAGS,
                now,
                json!({ "added": added, "removed": removed }),
            ));
        }
    }
    store::contacts::link_tags(tx, &link).await?;
    store::contacts::unlink_tags(tx, &unlink).await?;
    Ok(())
}

fn utm_values(u: &UtmInput) -> ([Option<String>; 9], String) {
    (
        [
            u.utm_campaign.clone(),
            u.utm_content.clone(),
            u.utm_medium.clone(),
            u.utm_source.clone(),
            u.utm_term.clone(),
            u.url.clone(),
            u.referer.clone(),
            u.remote_host.clone(),
            u.user_agent.clone(),
        ],
        Json::Object(u.query.clone()).to_string(),
    )
}

fn utm_json(u: &UtmInput) -> Json {
    json!({
        "utm_campaign": u.utm_campaign, "utm_content": u.utm_content, "utm_medium": u.utm_medium,
        "utm_source": u.utm_source, "utm_term": u.utm_term, "url": u.url, "referer": u.referer,
    })
}

/// Adds or subtracts points (the API's points/plus and points/minus).
pub async fn change_points(
    store: &Store,
    id: i64,
    change: store::contacts::PointsChange,
    action: &str,
    now: i64,
) -> AppResult<i64> {
    let mut tx = store.begin().await?;
    let Some((before, total)) = store::contacts::change_points(&mut tx, id, change, now).await?
    else {
        return Err(AppError::NotFound("Contact not found.".into()));
    };
    // The history says what changed: at the bound, less than was asked.
    let mut props = json!({ "delta": total - before, "points": total, "action": action });
    if let store::contacts::PointsChange::Add(delta) = change
        && total - before != delta
    {
        props["requested"] = json!(delta);
    }
    store::events::insert(
        &mut tx,
        &[NewEvent::new(id, keys::POINTS, now, props).source("api")],
    )
    .await?;
    tx.commit().await?;
    Ok(total)
}

/// Deletes contacts; returns how many existed. On PostgreSQL their rows are locked first,
/// in id order as saves lock them (a `DELETE … IN` locks in the table's order).
pub async fn delete(store: &Store, ids: &[i64]) -> AppResult<u64> {
    in_transaction(store, |tx, _, _| {
        Box::pin(async move {
            store::contacts::lock_rows(tx, ids, store::contacts::RowLock::Delete).await?;
            Ok(store::contacts::delete(tx, ids).await?)
        })
    })
    .await
}

/// Field values as given (raw JSON), normalized by type; those that fail are left out.
fn normalized<'f>(
    fields: &'f FieldSet,
    values: &[(String, Json)],
) -> Vec<(&'f FieldDef, Option<Value>)> {
    let mut sets = Vec::new();
    for (alias, raw) in values {
        if let Some(f) = fields.get(alias)
            && let Ok(Some(v)) = values::normalize(f, raw)
        {
            sets.push((f, Some(v)));
        }
    }
    sets
}

/// Whether `contact` matches these values' unique identifiers with `operator`, as
/// `find_duplicates` finds them.
pub fn matches_values(
    fields: &FieldSet,
    operator: UniqueIdentifierOperator,
    values: &[(String, Json)],
    contact: &Contact,
) -> bool {
    let sets = normalized(fields, values);
    matches(operator, &identifier_probe(fields, &sets), contact)
}

/// Duplicate detection for one set of values, for the admin form's warning: contacts
/// (other than `except`) matching by unique identifiers with the configured operator.
pub async fn find_duplicates(
    db: &mut impl Exec,
    fields: &FieldSet,
    operator: UniqueIdentifierOperator,
    values: &[(String, Json)],
    except: Option<i64>,
) -> AppResult<Vec<Contact>> {
    Ok(
        find_duplicates_each(db, fields, operator, &[(values, except)])
            .await?
            .remove(0),
    )
}

/// One duplicate lookup: field values, and the contact to leave out.
pub type Lookup<'a> = (&'a [(String, Json)], Option<i64>);

/// `find_duplicates` for several sets of values, with two statements for them all.
pub async fn find_duplicates_each(
    db: &mut impl Exec,
    fields: &FieldSet,
    operator: UniqueIdentifierOperator,
    each: &[Lookup<'_>],
) -> AppResult<Vec<Vec<Contact>>> {
    let mut probes: HashMap<String, Vec<Value>> = HashMap::new();
    let mut each_probe = Vec::with_capacity(each.len());
    for (values, _) in each {
        let sets = normalized(fields, values);
        each_probe.push(identifier_probe(fields, &sets));
        for (alias, value) in identifier_values(fields, &sets) {
            probes.entry(alias).or_default().push(value);
        }
    }
    let candidates = store::contacts::find_by_identifiers(db, fields, &probes).await?;
    let mut ids: Vec<i64> = candidates.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let contacts = store::contacts::load(db, fields, &ids).await?;
    Ok(each
        .iter()
        .zip(each_probe)
        .map(|((_, except), probe)| {
            contacts
                .iter()
                .filter(|c| Some(c.id) != *except && matches(operator, &probe, c))
                .cloned()
                .collect()
        })
        .collect())
}
