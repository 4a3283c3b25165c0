//! Website and app tracking: who a visitor is, and recording what they did.
//!
//! Hits (`/mtc/event`, `/mtracking.gif`) are answered only once they are durable in the
//! tracking journal (`journal.rs`: group commit into a file of their own); an applier
//! then records them here in large batches, one transaction each, with bulk statements.
//! Identification (a known email, a signed `ct` token) merges an anonymous visitor into
//! the known contact, which survives; two known contacts are never merged automatically —
//! the device moves instead.

pub mod hitlog;
pub mod ip;
pub mod journal;
pub mod pace;
pub mod params;
pub mod token;
pub mod ua;

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};

use crate::config::TrackingConfig;
use crate::contacts::fields::FieldSet;
use crate::contacts::input::{ContactInput, UtmInput};
use crate::contacts::service::{self, SaveContext, Source, Target};
use crate::contacts::{merge, values};
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::{self, Tx, Value};
use crate::timeline::{NewEvent, keys};
use params::HitParams;

pub use journal::Tracker;

/// A hit within this long of its device's previous one leaves the contact's last-active
/// time as it is.
const LAST_ACTIVE_STEP_MS: i64 = 60_000;

/// A hit as the journal keeps it: what the request said, parsed only when it is applied,
/// so answering a visitor costs little more than finding their device id.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// The request's parameters, decoded, in order: query string, then body.
    pub raw: Vec<(String, String)>,
    /// The `Referer` header when it names a web page: the page of a bare pixel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referer: Option<String>,
    /// The visitor's device id (the cookie's, else the parameter's); checked, or handed
    /// out, when the hit is journaled.
    pub device_id: Option<String>,
    /// The address to store (already anonymised when configured).
    pub ip: Option<String>,
    pub user_agent: String,
    pub at: i64,
}

impl Hit {
    /// The hit's parameters cleaned and sorted out, its `ct` token checked.
    pub fn parse(self, config: &TrackingConfig, secret: &[u8]) -> ParsedHit {
        let mut raw = self.raw;
        // The device id decided when the hit was journaled is the one that counts: first,
        // it wins over any parameter of that name (`parse` keeps a name's first value).
        if let Some(device) = &self.device_id {
            raw.insert(0, ("mautic_device_id".into(), device.clone()));
        }
        let mut params = params::parse(raw);
        params.device_id = self.device_id;
        if params.page_url.is_none() {
            params.page_url = self.referer;
        }
        let ct_contact = match (&params.ct, config.identify_by_tracking_url) {
            (Some(t), true) => token::verify(secret, t, self.at / 1000),
            _ => None,
        };
        ParsedHit {
            params,
            ip: self.ip,
            user_agent: self.user_agent,
            at: self.at,
            ct_contact,
        }
    }

    /// A journaled hit's body: this format, or a parsed hit as versions before 2026-11-29
    /// journaled them.
    pub fn read(body: &str, config: &TrackingConfig, secret: &[u8]) -> Result<ParsedHit, String> {
        match serde_json::from_str::<Hit>(body) {
            Ok(hit) => Ok(hit.parse(config, secret)),
            Err(e) => serde_json::from_str::<ParsedHit>(body).map_err(|_| e.to_string()),
        }
    }
}

/// A hit, parsed and ready to record.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ParsedHit {
    pub params: HitParams,
    /// The address to store (already anonymised when configured).
    pub ip: Option<String>,
    pub user_agent: String,
    pub at: i64,
    /// The contact a valid signed `ct` token names.
    pub ct_contact: Option<i64>,
}

/// Who the hit was recorded for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub contact_id: i64,
    pub device_id: String,
}

/// A random 128-bit id as 32 hex characters (a journal's id; the random part of a signed
/// device id, `token::issue_device_id`).
pub fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Publicly updatable field values a hit carries, validated; invalid ones are dropped
/// silently (a visitor never learns which fields exist).
fn public_values(fields: &FieldSet, hit: &HitParams) -> Vec<(String, Json)> {
    hit.fields
        .iter()
        .filter_map(|(alias, raw)| {
            let f = fields
                .get(alias)
                .filter(|f| f.is_publicly_updatable && f.is_published)?;
            values::normalize(f, &Json::String(raw.clone()))
                .ok()
                .flatten()?;
            Some((alias.clone(), Json::String(raw.clone())))
        })
        .collect()
}

/// Whether a hit (its valid `ct` token, its publicly updatable values) may name a
/// contact other than its device's: only such a hit can switch contacts (`identify`).
fn names_someone(fields: &FieldSet, ct_contact: Option<i64>, values: &[(String, Json)]) -> bool {
    ct_contact.is_some()
        || values
            .iter()
            .any(|(a, _)| fields.get(a).is_some_and(|f| f.is_unique_identifier))
}

impl ParsedHit {
    /// Whether applying this hit may move its visitor to another contact.
    pub fn may_switch_contact(&self, fields: &FieldSet) -> bool {
        names_someone(
            fields,
            self.ct_contact,
            &public_values(fields, &self.params),
        )
    }
}

/// How a hit's visitor relates to the contact its identifiers name.
pub enum Identity {
    /// Stay with the current contact (or a new one).
    Keep,
    /// Switch to this existing contact (merging the current one in when anonymous).
    Switch(i64),
}

/// The one identification rule, for hits and form submissions: a valid `ct` token or a
/// unique-identifier match names a contact other than the current one.
pub async fn identify(
    tx: &mut Tx,
    fields: &FieldSet,
    operator: crate::config::UniqueIdentifierOperator,
    current: Option<i64>,
    ct_contact: Option<i64>,
    values: &[(String, Json)],
) -> AppResult<Identity> {
    if let Some(id) = ct_contact {
        // A token's contact merged away since names the contact it went into.
        let id = store::merge::current_id(tx, id).await?;
        if let Some(id) = id.filter(|id| Some(*id) != current) {
            return Ok(Identity::Switch(id));
        }
    }
    if !names_someone(fields, None, values) {
        return Ok(Identity::Keep);
    }
    let found = service::find_duplicates(tx, fields, operator, values, current).await?;
    // The newest match, as for API creates.
    Ok(match found.iter().map(|c| c.id).max() {
        Some(id) => Identity::Switch(id),
        None => Identity::Keep,
    })
}

/// Moves the visitor to `target`: an anonymous current contact is merged into it (the
/// known contact survives); a known one is left alone and only the device moves.
pub async fn switch_to(
    tx: &mut Tx,
    fields: &FieldSet,
    current: Option<i64>,
    device: Option<i64>,
    target: i64,
    source: Source,
    now: i64,
    via: &str,
) -> AppResult<()> {
    let current_contact = match current {
        Some(c) => store::contacts::load(tx, fields, &[c]).await?.pop(),
        None => None,
    };
    match current_contact {
        Some(c) if c.is_anonymous() => {
            let terms = Default::default();
            merge::merge_in(tx, fields, (target, c.id), source, None, now, terms).await?;
        }
        Some(_) => {
            if let Some(d) = device {
                store::tracking::move_device(tx, d, target).await?;
            }
        }
        None => {}
    }
    store::events::insert(
        tx,
        &[NewEvent::new(
            target,
            keys::IDENTIFIED,
            now,
            json!({ "source": source.as_str(), "via": via }),
        )
        .source(source.as_str())],
    )
    .await?;
    Ok(())
}

/// Company parameters → (company column, value).
fn company_values(hit: &HitParams) -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&'static str, Value)> = Vec::new();
    for (k, v) in &hit.company {
        let column = match k.as_str() {
            "company" | "companyname" => "name",
            "companyemail" => "email",
            "companywebsite" => "website",
            "companyaddress1" => "address1",
            "companyaddress2" => "address2",
            "companycity" => "city",
            "companystate" => "state",
            "companyzipcode" => "zipcode",
            "companycountry" => "country",
            "companyphone" => "phone",
            "companynumber_of_employees" | "companyemployees" => "employees",
            "companyannual_revenue" | "companyrevenue" => "revenue",
            "companyindustry" => "industry",
            "companydescription" => "description",
            _ => continue,
        };
        if out.iter().any(|(c, _)| *c == column) {
            continue;
        }
        let value = match column {
            "employees" => match v.trim().parse::<i64>() {
                Ok(n) if n >= 0 => Value::Int(n),
                _ => continue,
            },
            "revenue" => match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Value::Float(n),
                _ => continue,
            },
            "email" if values::validate_email(v).is_err() => continue,
            "website" if values::validate_url(v).is_err() => continue,
            "country" => match values::country(v) {
                Some(c) => Value::Text(c.to_owned()),
                None => continue,
            },
            _ => Value::Text(v.chars().take(255).collect()),
        };
        out.push((column, value));
    }
    if !out.iter().any(|(c, _)| *c == "name") {
        return Vec::new();
    }
    out
}

/// Finds or creates the company a hit names and links the contact to it.
pub async fn attach_company(
    tx: &mut Tx,
    contact_id: i64,
    hit: &HitParams,
    now: i64,
) -> AppResult<()> {
    let values = company_values(hit);
    let Some(name) = values
        .iter()
        .find(|(c, _)| *c == "name")
        .and_then(|(_, v)| v.to_text())
    else {
        return Ok(());
    };
    let company_id = match store::companies::by_name(tx, &name).await? {
        Some(existing) => {
            // Fill what the company lacks; never overwrite what it has from a visitor's params.
            let missing: Vec<(&'static str, Value)> = values
                .into_iter()
                .filter(|(c, _)| existing.get(c).is_none())
                .collect();
            store::companies::update(tx, existing.id, &missing, now).await?;
            existing.id
        }
        None => store::companies::insert(tx, &values, now).await?,
    };
    store::companies::link(tx, contact_id, company_id, now).await?;
    Ok(())
}

fn hit_properties(hit: &ParsedHit, device: &ua::Agent, device_id: &str) -> Json {
    let p = &hit.params;
    let mut props = Map::new();
    let mut put = |k: &str, v: Option<Json>| {
        if let Some(v) = v {
            props.insert(k.to_owned(), v);
        }
    };
    put("url", p.page_url.clone().map(Json::String));
    put("title", p.page_title.clone().map(Json::String));
    put("referrer", p.page_referrer.clone().map(Json::String));
    put("language", p.page_language.clone().map(Json::String));
    put("resolution", p.resolution.clone().map(Json::String));
    put("timezone_offset", p.timezone_offset.map(Json::from));
    put("platform", p.platform.clone().map(Json::String));
    put("ip", hit.ip.clone().map(Json::String));
    put(
        "user_agent",
        Some(Json::String(hit.user_agent.chars().take(512).collect())),
    );
    put(
        "device",
        Some(
            json!({ "type": device.device_type, "os": device.os, "browser": device.browser, "id": device_id }),
        ),
    );
    if let Some(u) = &p.utm {
        put(
            "utm",
            Some(
                json!({ "source": u.utm_source, "medium": u.utm_medium, "campaign": u.utm_campaign, "content": u.utm_content, "term": u.utm_term }),
            ),
        );
    }
    if !p.query.is_empty() {
        put("query", Some(Json::Object(p.query.clone())));
    }
    Json::Object(props)
}

/// Applies journaled hits in one transaction, moving the journal's mark (`journal id`,
/// last hit) in it too; answers one `Tracked` per hit, in order. Every hit carries its
/// device id, checked or handed out when the hit was journaled: an id not in the database
/// yet becomes a new device.
pub async fn record_batch(
    state: &AppState,
    hits: &[&ParsedHit],
    (journal_id, through): (&str, i64),
) -> AppResult<Vec<Tracked>> {
    let mut tx = state.store.begin().await?;
    let fields = state.fields(&mut tx).await?;
    let operator = state.operator(&mut tx).await?;

    // 1. The devices the hits come from.
    let wanted: Vec<String> = hits
        .iter()
        .filter_map(|h| h.params.device_id.clone())
        .collect();
    let mut devices = store::tracking::devices_by_tracking_ids(&mut tx, &wanted).await?;

    // 2. Identify, hit by hit (rare: only hits carrying identifiers or tokens).
    struct Plan {
        contact: Option<i64>,
        device: Option<store::tracking::Device>,
        input: ContactInput,
    }
    let mut plans = Vec::with_capacity(hits.len());
    for hit in hits {
        let mut device = hit
            .params
            .device_id
            .as_ref()
            .and_then(|d| devices.get(d).cloned());
        let mut contact = device.as_ref().map(|d| d.contact_id);
        // Last active moves in steps of a minute: otherwise each hit of a browsing visitor
        // would rewrite their contact row and its entry in the last-active index.
        let mut recently_seen = device
            .as_ref()
            .is_some_and(|d| (0..LAST_ACTIVE_STEP_MS).contains(&(hit.at - d.last_seen)));
        let values = public_values(&fields, &hit.params);
        if (hit.ct_contact.is_some() || !values.is_empty())
            && let Identity::Switch(target) =
                identify(&mut tx, &fields, operator, contact, hit.ct_contact, &values).await?
        {
            let via = if hit.ct_contact.is_some() {
                "tracking url"
            } else {
                "unique identifier"
            };
            switch_to(
                &mut tx,
                &fields,
                contact,
                device.as_ref().map(|d| d.id),
                target,
                Source::Tracking,
                hit.at,
                via,
            )
            .await?;
            if let Some(d) = device.as_mut() {
                d.contact_id = target;
                devices.insert(d.tracking_id.clone(), d.clone());
            }
            contact = Some(target);
            recently_seen = false;
        }
        let mut input = ContactInput {
            values,
            tags: hit.params.tags.clone(),
            ip_address: hit.ip.clone(),
            ..ContactInput::default()
        };
        if !recently_seen {
            input.values.push((
                "last_active".into(),
                Json::String(crate::time::sql_datetime(hit.at)),
            ));
        }
        if let Some(utm) = &hit.params.utm {
            input.utm = vec![UtmInput {
                user_agent: Some(hit.user_agent.chars().take(1024).collect()),
                remote_host: hit.ip.clone(),
                ..utm.clone()
            }];
        }
        plans.push(Plan {
            contact,
            device,
            input,
        });
    }

    // 3. Contacts: new visitors get an anonymous contact; everyone gets last-active, IP,
    //    tags, UTM and publicly updatable values, through the one write path.
    let ctx = SaveContext {
        fields: fields.clone(),
        operator,
        actor: None,
        source: Source::Tracking,
        now: hits.iter().map(|h| h.at).max().unwrap_or(0),
    };
    let items: Vec<(Target, ContactInput)> = plans
        .iter()
        .map(|p| {
            (
                p.contact.map_or(Target::Create, Target::Patch),
                p.input.clone(),
            )
        })
        .collect();
    let saved = service::save_in(&mut tx, &ctx, items).await?;
    let mut contact_ids = Vec::with_capacity(hits.len());
    for (plan, result) in plans.iter().zip(saved) {
        match result {
            Ok(s) => contact_ids.push(s.id),
            // A value that slipped past validation: record the hit on the contact anyway.
            Err(e) => match plan.contact {
                Some(c) => {
                    tracing::warn!(error = %e, "tracking: contact update refused");
                    contact_ids.push(c);
                }
                None => return Err(e),
            },
        }
    }

    // 4. Companies named by the hit.
    for (hit, contact) in hits.iter().zip(&contact_ids) {
        if !hit.params.company.is_empty() {
            attach_company(&mut tx, *contact, &hit.params, hit.at).await?;
        }
    }

    // 5. Devices: hits without a known device get a new one.
    let agents: Vec<ua::Agent> = hits.iter().map(|h| ua::parse(&h.user_agent)).collect();
    let mut device_ids: Vec<(i64, String)> = Vec::with_capacity(hits.len());
    let mut new_devices = Vec::new();
    let mut new_slots = Vec::new();
    for (i, (plan, contact)) in plans.iter().zip(&contact_ids).enumerate() {
        match &plan.device {
            Some(d) => device_ids.push((d.id, d.tracking_id.clone())),
            None => {
                let tracking_id = hits[i]
                    .params
                    .device_id
                    .clone()
                    .unwrap_or_else(|| token::issue_device_id(&state.tracking_secret));
                new_devices.push(agents[i].device(
                    tracking_id.clone(),
                    *contact,
                    &hits[i].user_agent,
                    hits[i].at,
                ));
                new_slots.push(i);
                device_ids.push((0, tracking_id));
            }
        }
    }
    let inserted = store::tracking::insert_devices(&mut tx, &new_devices).await?;
    for (slot, id) in new_slots.into_iter().zip(inserted) {
        device_ids[slot].0 = id;
    }

    // 6. The page hits, and "date left" for each device's previous hit.
    let events: Vec<NewEvent> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            NewEvent::new(
                contact_ids[i],
                keys::PAGE_HIT,
                h.at,
                hit_properties(h, &agents[i], &device_ids[i].1),
            )
            .source("tracking")
        })
        .collect();
    let event_ids = store::events::insert_returning_ids(&mut tx, &events).await?;
    let mut last_hit: HashMap<i64, (Option<i64>, i64)> = HashMap::new();
    let mut date_left = Vec::new();
    for (i, h) in hits.iter().enumerate() {
        let device = device_ids[i].0;
        let previous = match last_hit.get(&device) {
            Some((prev, _)) => *prev,
            None => plans[i].device.as_ref().and_then(|d| d.last_hit_id),
        };
        if let Some(prev) = previous {
            date_left.push((prev, h.at));
        }
        last_hit.insert(device, (Some(event_ids[i]), h.at));
    }
    let touches: Vec<(i64, Option<i64>, i64)> = last_hit
        .into_iter()
        .map(|(d, (hit, at))| (d, hit, at))
        .collect();
    store::tracking::touch_devices(&mut tx, &touches).await?;
    store::tracking::set_date_left(&mut tx, &date_left).await?;
    store::tracking::set_journal_mark(&mut tx, journal_id, through).await?;
    tx.commit().await?;
    Ok(contact_ids
        .into_iter()
        .zip(device_ids)
        .map(|(contact_id, (_, device_id))| Tracked {
            contact_id,
            device_id,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn hit(raw: &[(&str, &str)]) -> Hit {
        Hit {
            raw: pairs(raw),
            referer: Some("https://blog.example/post".into()),
            device_id: Some("0123456789abcdef0123456789abcdef".into()),
            ip: Some("203.0.113.9".into()),
            user_agent: "Mozilla/5.0".into(),
            at: 1_800_000_000_000,
        }
    }

    #[test]
    fn a_journaled_hit_is_parsed_when_applied() {
        let secret = b"secret";
        let config = TrackingConfig {
            identify_by_tracking_url: true,
            ..TrackingConfig::default()
        };
        let token = token::issue(secret, 42, 1_800_000_000 + 60);
        let h = hit(&[
            ("page_title", "Pricing"),
            ("MAUTIC_DEVICE_ID", "ffffffffffffffffffffffffffffffff"),
            ("ct", &token),
            ("email", "ada@example.org"),
        ]);
        let body = serde_json::to_string(&h).unwrap();
        let parsed = Hit::read(&body, &config, secret).unwrap();
        assert_eq!(
            parsed.params.device_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef"),
            "the device id decided when journaled wins over the parameter"
        );
        assert_eq!(
            parsed.params.query.get("mautic_device_id"),
            Some(&Json::String("0123456789abcdef0123456789abcdef".into()))
        );
        assert_eq!(
            parsed.params.page_url.as_deref(),
            Some("https://blog.example/post"),
            "a bare pixel's page is its referrer"
        );
        assert_eq!(parsed.params.page_title.as_deref(), Some("Pricing"));
        assert_eq!(parsed.ct_contact, Some(42), "checked at the hit's time");
        assert_eq!(
            parsed.params.fields,
            vec![("email".to_owned(), "ada@example.org".to_owned())]
        );
        let expired = Hit {
            at: 1_800_000_000_000 + 120_000,
            ..h.clone()
        };
        assert_eq!(expired.parse(&config, secret).ct_contact, None);
        let off = TrackingConfig::default();
        assert_eq!(h.parse(&off, secret).ct_contact, None);
    }

    #[test]
    fn hits_journaled_parsed_by_earlier_versions_still_read() {
        let old = ParsedHit {
            params: params::parse(pairs(&[
                ("page_url", "https://shop.example/a"),
                ("mautic_device_id", "0123456789abcdef0123456789abcdef"),
            ])),
            ip: None,
            user_agent: "Mozilla/5.0".into(),
            at: 1_700_000_000_000,
            ct_contact: Some(7),
        };
        let body = serde_json::to_string(&old).unwrap();
        let read = Hit::read(&body, &TrackingConfig::default(), b"s").unwrap();
        assert_eq!(read.params, old.params);
        assert_eq!(read.ct_contact, Some(7));
        assert!(Hit::read("{\"nonsense\":1}", &TrackingConfig::default(), b"s").is_err());
    }

    #[test]
    fn the_device_id_parameter_as_parse_reads_it() {
        assert_eq!(
            params::device_id(&pairs(&[
                ("a", "b"),
                (" Mautic_Device_Id[] ", " 0123456789abcdef0123456789abcdef "),
                ("mautic_device_id", "fedcba9876543210fedcba9876543210"),
            ]))
            .as_deref(),
            Some("0123456789abcdef0123456789abcdef"),
            "the first one, trimmed"
        );
        assert_eq!(
            params::device_id(&pairs(&[("mautic_device_id", "../../etc/passwd")])),
            None
        );
        assert_eq!(params::device_id(&pairs(&[("x", "y")])), None);
    }
}
