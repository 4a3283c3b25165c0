//! Contacts in Mautic's JSON shape (what existing API clients parse).
//!
//! Contacts are serialised straight from the loaded rows through `Serialize` views, with
//! no intermediate `serde_json::Value` tree: a batch answer carries 200 contacts of ~30
//! fields each, and building then dropping that tree cost more than the database work.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value as Json, json};

use crate::contacts::Contact;
use crate::contacts::fields::{FieldDef, FieldSet, FieldType, STANDARD_GROUPS, Storage};
use crate::error::AppResult;
use crate::store::{self, Exec, Value};
use crate::time::iso;
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
    pub async fn load(
        db: &mut impl Exec,
        contacts: &[Contact],
        minimal: bool,
    ) -> AppResult<Extras> {
        let mut user_ids: Vec<i64> = contacts
            .iter()
            .flat_map(|c| [c.owner_id, c.created_by, c.modified_by])
            .flatten()
            .collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let users = store::users::by_ids(db, &user_ids)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        if minimal {
            return Ok(Extras {
                users,
                ..Extras::default()
            });
        }
        let ids: Vec<i64> = contacts.iter().map(|c| c.id).collect();
        let mut stage_ids: Vec<i64> = contacts.iter().filter_map(|c| c.stage_id).collect();
        stage_ids.sort_unstable();
        stage_ids.dedup();
        let mut tags: Vec<String> = contacts
            .iter()
            .flat_map(|c| c.tags.iter().cloned())
            .collect();
        tags.sort();
        tags.dedup();
        Ok(Extras {
            users,
            stages: store::stages::by_ids(db, &stage_ids)
                .await?
                .into_iter()
                .map(|s| (s.id, s))
                .collect(),
            ips: store::contacts::ips_of(db, &ids).await?,
            dnc: store::contacts::dnc_of(db, &ids).await?,
            utm: store::contacts::utm_of(db, &ids).await?,
            tag_ids: store::contacts::tag_ids(db, &tags).await?,
        })
    }

    fn user_name(&self, id: Option<i64>) -> Option<String> {
        id.and_then(|id| self.users.get(&id)).map(User::full_name)
    }
}

/// A stored value as Mautic shows it: numbers as numbers, last_active as a date-time.
struct ValueView<'a>(&'a FieldDef, &'a Value);

impl Serialize for ValueView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (field, value) = (self.0, self.1);
        match (field.storage(), value) {
            (_, Value::Null(_)) => s.serialize_none(),
            (Storage::Timestamp, v) => match v.as_i64() {
                Some(ms) => s.serialize_str(&crate::time::sql_datetime(ms)),
                None => s.serialize_none(),
            },
            (_, Value::Int(i)) => s.serialize_i64(*i),
            (_, Value::Float(f)) if f.fract() == 0.0 && f.abs() < 1e15 => {
                s.serialize_i64(*f as i64)
            }
            (_, Value::Float(f)) => s.serialize_f64(*f),
            (_, Value::Text(t)) => s.serialize_str(t),
        }
    }
}

/// Mautic's `normalizedValue`: labels for booleans and options, "" for empty.
fn normalized<'a>(f: &'a FieldDef, v: &'a Value) -> Cow<'a, str> {
    let text: Cow<str> = match (f.storage(), v) {
        (_, Value::Null(_)) => return Cow::Borrowed(""),
        (Storage::Timestamp, v) => Cow::Owned(
            v.as_i64()
                .map(crate::time::sql_datetime)
                .unwrap_or_default(),
        ),
        (_, Value::Text(t)) => Cow::Borrowed(t.as_str()),
        (_, Value::Float(x)) if x.fract() == 0.0 && x.abs() < 1e15 => {
            Cow::Owned((*x as i64).to_string())
        }
        (_, other) => Cow::Owned(other.to_text().unwrap_or_default()),
    };
    let label_of = |value: &str| {
        f.options()
            .into_iter()
            .find(|(_, v)| v == value)
            .map_or_else(|| value.to_owned(), |(l, _)| l)
    };
    match f.field_type {
        FieldType::Boolean => {
            let yes = text == "1";
            let key = if yes { "yes" } else { "no" };
            Cow::Owned(
                f.properties
                    .get(key)
                    .and_then(Json::as_str)
                    .unwrap_or(if yes { "Yes" } else { "No" })
                    .to_owned(),
            )
        }
        FieldType::Select => Cow::Owned(label_of(&text)),
        FieldType::Multiselect => {
            Cow::Owned(text.split('|').map(label_of).collect::<Vec<_>>().join("|"))
        }
        _ => text,
    }
}

/// One entry of `fields.<group>`: the definition plus the value.
struct FieldEntry<'a>(&'a FieldDef, Value);

impl Serialize for FieldEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        let mut m = s.serialize_map(Some(11))?;
        m.serialize_entry("id", &f.id)?;
        m.serialize_entry("label", &f.label)?;
        m.serialize_entry("alias", &f.alias)?;
        m.serialize_entry("type", f.field_type.as_str())?;
        m.serialize_entry("group", &f.group)?;
        m.serialize_entry("object", "lead")?;
        m.serialize_entry("is_fixed", &f.is_fixed)?;
        m.serialize_entry("properties", &f.properties)?;
        m.serialize_entry("default_value", &f.default_value)?;
        m.serialize_entry("value", &ValueView(f, &self.1))?;
        m.serialize_entry("normalizedValue", &normalized(f, &self.1))?;
        m.end()
    }
}

/// `fields`: the standard groups (and any custom group), each `[]` when empty as in
/// Mautic, plus `all`.
struct FieldsView<'a> {
    fields: &'a FieldSet,
    contact: &'a Contact,
}

struct GroupView<'a> {
    fields: &'a FieldSet,
    contact: &'a Contact,
    group: &'a str,
}

impl Serialize for GroupView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let members: Vec<&FieldDef> = self
            .fields
            .iter()
            .filter(|f| f.is_published && f.group == self.group)
            .collect();
        if members.is_empty() {
            return s.serialize_seq(Some(0))?.end();
        }
        let mut m = s.serialize_map(Some(members.len()))?;
        for f in members {
            m.serialize_entry(&f.alias, &FieldEntry(f, self.contact.field_value(f)))?;
        }
        m.end()
    }
}

struct AllView<'a> {
    fields: &'a FieldSet,
    contact: &'a Contact,
}

impl Serialize for AllView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.contact.id)?;
        for f in self.fields.iter().filter(|f| f.is_published) {
            m.serialize_entry(&f.alias, &ValueView(f, &self.contact.field_value(f)))?;
        }
        m.end()
    }
}

impl Serialize for FieldsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut groups: Vec<&str> = STANDARD_GROUPS.to_vec();
        for f in self.fields.iter() {
            if !groups.contains(&f.group.as_str()) {
                groups.push(&f.group);
            }
        }
        let mut m = s.serialize_map(Some(groups.len() + 1))?;
        for g in groups {
            m.serialize_entry(
                g,
                &GroupView {
                    fields: self.fields,
                    contact: self.contact,
                    group: g,
                },
            )?;
        }
        m.serialize_entry(
            "all",
            &AllView {
                fields: self.fields,
                contact: self.contact,
            },
        )?;
        m.end()
    }
}

pub fn owner_json(u: &User) -> Json {
    json!({ "id": u.id, "username": u.username, "firstName": u.first_name, "lastName": u.last_name })
}

/// A contact as Mautic's API shows it; `minimal` is `GET /api/contacts?minimal=1`.
pub struct ContactView<'a> {
    pub fields: &'a FieldSet,
    pub extras: &'a Extras,
    pub contact: &'a Contact,
    pub minimal: bool,
}

struct Seq<I>(std::cell::RefCell<Option<I>>);

impl<I: Iterator<Item = T>, T: Serialize> Serialize for Seq<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        if let Some(items) = self.0.borrow_mut().take() {
            for item in items {
                seq.serialize_element(&item)?;
            }
        }
        seq.end()
    }
}

fn seq<I: Iterator>(items: I) -> Seq<I> {
    Seq(std::cell::RefCell::new(Some(items)))
}

impl Serialize for ContactView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (c, x) = (self.contact, self.extras);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("isPublished", &true)?;
        m.serialize_entry("dateAdded", &iso(c.date_added))?;
        m.serialize_entry("dateModified", &iso(c.date_modified))?;
        m.serialize_entry("createdBy", &c.created_by)?;
        m.serialize_entry("createdByUser", &x.user_name(c.created_by))?;
        m.serialize_entry("modifiedBy", &c.modified_by)?;
        m.serialize_entry("modifiedByUser", &x.user_name(c.modified_by))?;
        m.serialize_entry("id", &c.id)?;
        m.serialize_entry("points", &c.points)?;
        m.serialize_entry("color", &None::<String>)?;
        m.serialize_entry(
            "fields",
            &FieldsView {
                fields: self.fields,
                contact: c,
            },
        )?;
        if self.minimal {
            return m.end();
        }
        m.serialize_entry("lastActive", &c.last_active.map(iso))?;
        m.serialize_entry(
            "owner",
            &c.owner_id.and_then(|id| x.users.get(&id)).map(owner_json),
        )?;
        let mut ips = Map::new();
        for ip in x.ips.get(&c.id).map(Vec::as_slice).unwrap_or(&[]) {
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
        m.serialize_entry("ipAddresses", &ips)?;
        m.serialize_entry(
            "tags",
            &seq(c
                .tags
                .iter()
                .map(|t| json!({ "id": x.tag_ids.get(t), "tag": t, "description": null }))),
        )?;
        let utm = x.utm.get(&c.id).map(Vec::as_slice).unwrap_or(&[]).iter().map(|u| {
            let f: HashMap<&str, &Option<String>> = u.fields.iter().map(|(k, v)| (*k, v)).collect();
            json!({
                "id": u.id,
                "dateAdded": iso(u.date_added),
                "query": serde_json::from_str::<Json>(&u.query).unwrap_or(json!({})),
                "referer": f["referer"], "remoteHost": f["remote_host"], "url": f["url"], "userAgent": f["user_agent"],
                "utmCampaign": f["utm_campaign"], "utmContent": f["utm_content"], "utmMedium": f["utm_medium"],
                "utmSource": f["utm_source"], "utmTerm": f["utm_term"],
            })
        });
        m.serialize_entry("utmtags", &seq(utm))?;
        let stage = c.stage_id.and_then(|id| x.stages.get(&id)).map(|s| {
            json!({ "id": s.id, "name": s.name, "category": null, "weight": s.weight, "description": s.description })
        });
        m.serialize_entry("stage", &stage)?;
        m.serialize_entry("dateIdentified", &c.date_identified.map(iso))?;
        m.serialize_entry(
            "preferredProfileImage",
            c.preferred_profile_image.as_deref().unwrap_or("gravatar"),
        )?;
        let dnc = x.dnc.get(&c.id).map(Vec::as_slice).unwrap_or(&[]).iter().map(|d| {
            json!({ "id": d.id, "dateAdded": iso(d.date_added), "reason": d.reason, "comments": d.comments,
                    "channel": d.channel, "channelId": d.channel_id })
        });
        m.serialize_entry("doNotContact", &seq(dnc))?;
        m.serialize_entry("frequencyRules", &[(); 0])?;
        m.end()
    }
}

/// A contact as a JSON value (for answers that change it, like delete's `id: null`).
pub fn contact_json(fields: &FieldSet, extras: &Extras, c: &Contact, minimal: bool) -> Json {
    serde_json::to_value(ContactView {
        fields,
        extras,
        contact: c,
        minimal,
    })
    .unwrap_or(Json::Null)
}

/// A field entry as a JSON value (used by the admin and other areas).
pub fn field_entry(f: &FieldDef, value: &Value) -> Json {
    serde_json::to_value(FieldEntry(f, value.clone())).unwrap_or(Json::Null)
}
