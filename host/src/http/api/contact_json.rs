//! Contacts in Mautic's JSON shape (what existing API clients parse).

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};

use crate::contacts::Contact;
use crate::contacts::fields::{FieldDef, FieldSet, FieldType, STANDARD_GROUPS};
use crate::contacts::values;
use crate::error::AppResult;
use crate::store::{self, Exec, Value};
use crate::time::{iso, iso_opt};
use crate::users::User;

/// Everything besides the contact rows that the JSON shows, fetched once for a page.
#[derive(Default)]
pub struct Extras {
    users: HashMap<i64, User>,
    stages: HashMap<i64, store::stages::StageRow>,
    ips: HashMap<i64, Vec<store::contacts::IpRow>>,
    dnc: HashMap<i64, Vec<store::contacts::DncRow>>,
    utm: HashMap<i64, Vec<store::contacts::UtmRow>>,
    tag_ids: HashMap<String, i64>,
}

impl Extras {
    pub async fn load(db: &mut impl Exec, contacts: &[Contact], minimal: bool) -> AppResult<Extras> {
        let mut user_ids: Vec<i64> = contacts.iter().flat_map(|c| [c.owner_id, c.created_by, c.modified_by]).flatten().collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let users = store::users::by_ids(db, &user_ids).await?.into_iter().map(|u| (u.id, u)).collect();
        if minimal {
            return Ok(Extras { users, ..Extras::default() });
        }
        let ids: Vec<i64> = contacts.iter().map(|c| c.id).collect();
        let mut stage_ids: Vec<i64> = contacts.iter().filter_map(|c| c.stage_id).collect();
        stage_ids.sort_unstable();
        stage_ids.dedup();
        let mut tags: Vec<String> = contacts.iter().flat_map(|c| c.tags.iter().cloned()).collect();
        tags.sort();
        tags.dedup();
        Ok(Extras {
            users,
            stages: store::stages::by_ids(db, &stage_ids).await?.into_iter().map(|s| (s.id, s)).collect(),
            ips: store::contacts::ips_of(db, &ids).await?,
            dnc: store::contacts::dnc_of(db, &ids).await?,
            utm: store::contacts::utm_of(db, &ids).await?,
            tag_ids: store::contacts::tag_ids(db, &tags).await?,
        })
    }
}

fn user_name(extras: &Extras, id: Option<i64>) -> Json {
    id.and_then(|id| extras.users.get(&id)).map_or(Json::Null, |u| Json::String(u.full_name()))
}

/// A field entry of `fields.<group>`: definition plus value.
pub fn field_entry(f: &FieldDef, value: &Value) -> Json {
    let v = values::to_json(f, value);
    json!({
        "id": f.id,
        "label": f.label,
        "alias": f.alias,
        "type": f.field_type.as_str(),
        "group": f.group,
        "object": "lead",
        "is_fixed": f.is_fixed,
        "properties": Json::Object(f.properties.clone()),
        "default_value": f.default_value,
        "value": v,
        "normalizedValue": normalized(f, &v),
    })
}

/// Mautic's `normalizedValue`: labels for booleans and options, "" for empty.
fn normalized(f: &FieldDef, v: &Json) -> Json {
    let text = match v {
        Json::Null => return Json::String(String::new()),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let label_of = |value: &str| f.options().into_iter().find(|(_, v)| v == value).map_or_else(|| value.to_owned(), |(l, _)| l);
    Json::String(match f.field_type {
        FieldType::Boolean => {
            let key = if text == "1" { "yes" } else { "no" };
            f.properties.get(key).and_then(Json::as_str).unwrap_or(if text == "1" { "Yes" } else { "No" }).to_owned()
        }
        FieldType::Select => label_of(&text),
        FieldType::Multiselect => text.split('|').map(label_of).collect::<Vec<_>>().join("|"),
        _ => text,
    })
}

/// `fields`: the standard groups (and any custom group), each `[]` when empty as in
/// Mautic, plus `all`.
pub fn fields_json(fields: &FieldSet, c: &Contact) -> Json {
    let mut groups: Map<String, Json> = Map::new();
    for g in STANDARD_GROUPS {
        groups.insert(g.to_owned(), Json::Object(Map::new()));
    }
    let mut all = Map::new();
    all.insert("id".into(), json!(c.id));
    for f in fields.iter().filter(|f| f.is_published) {
        let value = c.field_value(f);
        let entry = groups.entry(f.group.clone()).or_insert_with(|| Json::Object(Map::new()));
        if let Json::Object(m) = entry {
            m.insert(f.alias.clone(), field_entry(f, &value));
        }
        all.insert(f.alias.clone(), values::to_json(f, &value));
    }
    for v in groups.values_mut() {
        if v.as_object().is_some_and(Map::is_empty) {
            *v = json!([]);
        }
    }
    groups.insert("all".into(), Json::Object(all));
    Json::Object(groups)
}

pub fn owner_json(u: &User) -> Json {
    json!({ "id": u.id, "username": u.username, "firstName": u.first_name, "lastName": u.last_name })
}

/// The contact as Mautic's API shows it. `minimal` is `GET /api/contacts?minimal=1`.
pub fn contact_json(fields: &FieldSet, extras: &Extras, c: &Contact, minimal: bool) -> Json {
    let mut m = Map::new();
    m.insert("isPublished".into(), json!(true));
    m.insert("dateAdded".into(), json!(iso(c.date_added)));
    m.insert("dateModified".into(), json!(iso(c.date_modified)));
    m.insert("createdBy".into(), json!(c.created_by));
    m.insert("createdByUser".into(), user_name(extras, c.created_by));
    m.insert("modifiedBy".into(), json!(c.modified_by));
    m.insert("modifiedByUser".into(), user_name(extras, c.modified_by));
    m.insert("id".into(), json!(c.id));
    m.insert("points".into(), json!(c.points));
    m.insert("color".into(), Json::Null);
    m.insert("fields".into(), fields_json(fields, c));
    if minimal {
        return Json::Object(m);
    }
    m.insert("lastActive".into(), iso_opt(c.last_active));
    m.insert("owner".into(), c.owner_id.and_then(|id| extras.users.get(&id)).map_or(Json::Null, owner_json));
    let mut ips = Map::new();
    for ip in extras.ips.get(&c.id).map(Vec::as_slice).unwrap_or(&[]) {
        ips.insert(
            ip.ip.clone(),
            json!({
                "ipAddress": ip.ip,
                "firstSeen": iso(ip.first_seen),
                "lastSeen": iso(ip.last_seen),
                "ipDetails": {"city": "", "region": "", "zipcode": "", "country": "", "latitude": "", "longitude": "",
                              "isp": "", "organization": "", "timezone": "", "extra": ""},
            }),
        );
    }
    m.insert("ipAddresses".into(), Json::Object(ips));
    let tags: Vec<Json> = c
        .tags
        .iter()
        .map(|t| json!({ "id": extras.tag_ids.get(t), "tag": t, "description": null }))
        .collect();
    m.insert("tags".into(), Json::Array(tags));
    let utm: Vec<Json> = extras
        .utm
        .get(&c.id)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|u| {
            let f: HashMap<&str, &Option<String>> = u.fields.iter().map(|(k, v)| (*k, v)).collect();
            json!({
                "id": u.id,
                "dateAdded": iso(u.date_added),
                "query": serde_json::from_str::<Json>(&u.query).unwrap_or(json!({})),
                "referer": f["referer"], "remoteHost": f["remote_host"], "url": f["url"], "userAgent": f["user_agent"],
                "utmCampaign": f["utm_campaign"], "utmContent": f["utm_content"], "utmMedium": f["utm_medium"],
                "utmSource": f["utm_source"], "utmTerm": f["utm_term"],
            })
        })
        .collect();
    m.insert("utmtags".into(), Json::Array(utm));
    m.insert(
        "stage".into(),
        c.stage_id.and_then(|id| extras.stages.get(&id)).map_or(Json::Null, |s| {
            json!({ "id": s.id, "name": s.name, "category": null, "weight": s.weight, "description": s.description })
        }),
    );
    m.insert("dateIdentified".into(), iso_opt(c.date_identified));
    m.insert("preferredProfileImage".into(), json!(c.preferred_profile_image.as_deref().unwrap_or("gravatar")));
    let dnc: Vec<Json> = extras
        .dnc
        .get(&c.id)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|d| {
            json!({ "id": d.id, "dateAdded": iso(d.date_added), "reason": d.reason, "comments": d.comments,
                    "channel": d.channel, "channelId": d.channel_id })
        })
        .collect();
    m.insert("doNotContact".into(), Json::Array(dnc));
    m.insert("frequencyRules".into(), json!([]));
    Json::Object(m)
}
