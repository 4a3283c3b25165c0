//! Contacts in Mautic's JSON shape (what existing API clients parse).
//!
//! Contacts are serialised straight from the loaded rows through `Serialize` views, with
//! no intermediate `serde_json::Value` tree: a batch answer carries 200 contacts of ~30
//! fields each, and building then dropping that tree cost more than the database work.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::ser::{Serialize, Serializer};
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

/// What every contact of one answer shares, already in JSON: each published field's
/// definition (all of its entry but the value), grouped as Mautic groups them. Built once
/// per answer, it turns ~300 serialised keys per contact into ~30 copies.
pub struct Layout<'a> {
    /// `"core":` and its members' `"alias":{"id":…,"default_value":…,"value":` (no
    /// member: the group is `[]`, as in Mautic).
    groups: Vec<(String, Vec<(&'a FieldDef, String)>)>,
    /// The published fields, in order, with their `,"alias":` for `all`.
    all: Vec<(&'a FieldDef, String)>,
}

impl<'a> Layout<'a> {
    pub fn new(fields: &'a FieldSet) -> Layout<'a> {
        let mut names: Vec<&str> = STANDARD_GROUPS.to_vec();
        for f in fields.iter() {
            if !names.contains(&f.group.as_str()) {
                names.push(&f.group);
            }
        }
        let groups = names
            .into_iter()
            .map(|g| {
                let members = fields
                    .iter()
                    .filter(|f| f.is_published && f.group == g)
                    .map(|f| {
                        let head = json!({
                            "id": f.id, "label": f.label, "alias": f.alias,
                            "type": f.field_type.as_str(), "group": f.group, "object": "lead",
                            "is_fixed": f.is_fixed, "properties": f.properties,
                            "default_value": f.default_value,
                        });
                        // `{…}` without its closing brace, ready for `,"value":…}`.
                        let mut entry = format!("{}:{}", Json::from(f.alias.as_str()), head);
                        entry.pop();
                        entry.push_str(",\"value\":");
                        (f, entry)
                    })
                    .collect();
                (format!("{}:", Json::from(g)), members)
            })
            .collect();
        let all = fields
            .iter()
            .filter(|f| f.is_published)
            .map(|f| (f, format!(",{}:", Json::from(f.alias.as_str()))))
            .collect();
        Layout { groups, all }
    }

    /// `fields`: the groups, then `all`.
    fn write_fields(&self, out: &mut Vec<u8>, c: &Contact) {
        out.push(b'{');
        for (i, (group, members)) in self.groups.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(group.as_bytes());
            if members.is_empty() {
                out.extend_from_slice(b"[]");
                continue;
            }
            out.push(b'{');
            for (j, (f, head)) in members.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                let value = c.field_value(f);
                out.extend_from_slice(head.as_bytes());
                write_json(out, &ValueView(f, &value));
                out.extend_from_slice(b",\"normalizedValue\":");
                match (f.field_type, &value) {
                    // Mautic casts a number field's normalized value back to a number.
                    (FieldType::Number, v) if !matches!(v, Value::Null(_)) => {
                        write_json(out, &ValueView(f, v))
                    }
                    _ => write_json(out, &normalized(f, &value)),
                }
                out.push(b'}');
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"all\":{\"id\":");
        write_json(out, &c.id);
        for (f, key) in &self.all {
            out.extend_from_slice(key.as_bytes());
            write_json(out, &ValueView(f, &c.field_value(f)));
        }
        out.extend_from_slice(b"}}");
    }
}

/// Appends a value's JSON (writing to memory cannot fail).
pub fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(&mut *out, v).expect("JSON into memory");
}

/// Appends `,"key":` and the value's JSON.
fn entry<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, v: &T) {
    out.push(b',');
    write_json(out, key);
    out.push(b':');
    write_json(out, v);
}

pub fn owner_json(u: &User) -> Json {
    json!({ "id": u.id, "username": u.username, "firstName": u.first_name, "lastName": u.last_name })
}

/// A contact as Mautic's API shows it; `minimal` is `GET /api/contacts?minimal=1`.
pub struct ContactView<'a> {
    pub layout: &'a Layout<'a>,
    pub extras: &'a Extras,
    pub contact: &'a Contact,
    pub minimal: bool,
}

impl ContactView<'_> {
    /// Appends the contact's JSON object.
    pub fn write(&self, out: &mut Vec<u8>) {
        let (c, x) = (self.contact, self.extras);
        out.extend_from_slice(b"{\"isPublished\":true");
        entry(out, "dateAdded", &iso(c.date_added));
        entry(out, "dateModified", &iso(c.date_modified));
        entry(out, "createdBy", &c.created_by);
        entry(out, "createdByUser", &x.user_name(c.created_by));
        entry(out, "modifiedBy", &c.modified_by);
        entry(out, "modifiedByUser", &x.user_name(c.modified_by));
        entry(out, "id", &c.id);
        entry(out, "points", &c.points);
        out.extend_from_slice(b",\"color\":null,\"fields\":");
        self.layout.write_fields(out, c);
        if self.minimal {
            out.push(b'}');
            return;
        }
        entry(out, "lastActive", &c.last_active.map(iso));
        entry(
            out,
            "owner",
            &c.owner_id.and_then(|id| x.users.get(&id)).map(owner_json),
        );
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
        entry(out, "ipAddresses", &ips);
        let tags: Vec<Json> = c
            .tags
            .iter()
            .map(|t| json!({ "id": x.tag_ids.get(t), "tag": t, "description": null }))
            .collect();
        entry(out, "tags", &tags);
        let utm: Vec<Json> = x.utm.get(&c.id).map(Vec::as_slice).unwrap_or(&[]).iter().map(|u| {
            let f: HashMap<&str, &Option<String>> = u.fields.iter().map(|(k, v)| (*k, v)).collect();
            json!({
                "id": u.id,
                "dateAdded": iso(u.date_added),
                "query": serde_json::from_str::<Json>(&u.query).unwrap_or(json!({})),
                "referer": f["referer"], "remoteHost": f["remote_host"], "url": f["url"], "userAgent": f["user_agent"],
                "utmCampaign": f["utm_campaign"], "utmContent": f["utm_content"], "utmMedium": f["utm_medium"],
                "utmSource": f["utm_source"], "utmTerm": f["utm_term"],
            })
        }).collect();
        entry(out, "utmtags", &utm);
        let stage = c.stage_id.and_then(|id| x.stages.get(&id)).map(|s| {
            json!({ "id": s.id, "name": s.name, "category": null, "weight": s.weight, "description": s.description })
        });
        entry(out, "stage", &stage);
        entry(out, "dateIdentified", &c.date_identified.map(iso));
        entry(
            out,
            "preferredProfileImage",
            c.preferred_profile_image.as_deref().unwrap_or("gravatar"),
        );
        let dnc: Vec<Json> = x.dnc.get(&c.id).map(Vec::as_slice).unwrap_or(&[]).iter().map(|d| {
            json!({ "id": d.id, "dateAdded": iso(d.date_added), "reason": d.reason, "comments": d.comments,
                    "channel": d.channel, "channelId": d.channel_id })
        }).collect();
        entry(out, "doNotContact", &dnc);
        out.extend_from_slice(b",\"frequencyRules\":[]}");
    }
}

/// About one contact's JSON with the default fields (~6.5 KB), to size an answer once.
pub const CONTACT_BYTES: usize = 8192;

/// Appends contacts as a JSON array.
pub fn write_array<'a>(out: &mut Vec<u8>, views: impl IntoIterator<Item = ContactView<'a>>) {
    out.push(b'[');
    for (i, view) in views.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        view.write(out);
    }
    out.push(b']');
}

/// Appends contacts as a JSON object keyed by `key` (an id or an index), in order.
pub fn write_keyed<'a>(
    out: &mut Vec<u8>,
    views: impl IntoIterator<Item = (impl std::fmt::Display, ContactView<'a>)>,
) {
    use std::io::Write;
    out.push(b'{');
    for (i, (key, view)) in views.into_iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        write!(out, "{comma}\"{key}\":").expect("JSON into memory");
        view.write(out);
    }
    out.push(b'}');
}

/// A contact as a JSON value (for answers that change it, like delete's `id: null`).
pub fn contact_json(layout: &Layout, extras: &Extras, c: &Contact, minimal: bool) -> Json {
    let mut out = Vec::new();
    ContactView {
        layout,
        extras,
        contact: c,
        minimal,
    }
    .write(&mut out);
    serde_json::from_slice(&out).expect("the contact's JSON is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::fields::FieldSet;

    /// The default fields, a custom group with a hostile label, a boolean, and an
    /// unpublished field.
    fn fields() -> FieldSet {
        let mut defs: Vec<FieldDef> = FieldSet::defaults_for_tests().iter().cloned().collect();
        let base = defs[0].clone();
        let custom = |id: i64, alias: &str, label: &str, group: &str, t: FieldType| FieldDef {
            id,
            alias: alias.into(),
            label: label.into(),
            field_type: t,
            group: group.into(),
            order: 100 + id,
            is_fixed: false,
            ..base.clone()
        };
        defs.push(custom(
            901,
            "vip",
            "V\"I\\P\u{1}</script>",
            "Extra \"group\"",
            FieldType::Boolean,
        ));
        let mut hidden = custom(902, "secret", "Secret", "core", FieldType::Text);
        hidden.is_published = false;
        defs.push(hidden);
        FieldSet::new(defs)
    }

    fn contact() -> Contact {
        let mut c = Contact {
            id: 42,
            date_added: 1_700_000_000_000,
            date_modified: 1_700_000_000_500,
            date_identified: Some(1_700_000_000_000),
            points: 7,
            tags: vec!["a\"b".into()],
            ..Contact::default()
        };
        c.values
            .insert("email".into(), Value::Text("x\"y@example.org".into()));
        c.values
            .insert("firstname".into(), Value::Text("Zoë\n\u{7}".into()));
        c.values.insert("vip".into(), Value::Int(1));
        c.values
            .insert("secret".into(), Value::Text("never shown".into()));
        c
    }

    fn written(fields: &FieldSet, minimal: bool) -> (String, Json) {
        let mut out = Vec::new();
        ContactView {
            layout: &Layout::new(fields),
            extras: &Extras::default(),
            contact: &contact(),
            minimal,
        }
        .write(&mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        let json = serde_json::from_str(&text).expect("valid JSON");
        (text, json)
    }

    fn keys(v: &Json) -> Vec<&str> {
        v.as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn writes_mautics_contact_shape() {
        let fields = fields();
        let (_, j) = written(&fields, false);
        assert_eq!(
            keys(&j),
            [
                "isPublished",
                "dateAdded",
                "dateModified",
                "createdBy",
                "createdByUser",
                "modifiedBy",
                "modifiedByUser",
                "id",
                "points",
                "color",
                "fields",
                "lastActive",
                "owner",
                "ipAddresses",
                "tags",
                "utmtags",
                "stage",
                "dateIdentified",
                "preferredProfileImage",
                "doNotContact",
                "frequencyRules",
            ]
        );
        assert_eq!(j["id"], 42);
        assert_eq!(j["points"], 7);
        assert_eq!(j["dateAdded"], iso(1_700_000_000_000));
        assert_eq!(
            j["tags"],
            json!([{ "id": null, "tag": "a\"b", "description": null }])
        );
        assert_eq!(j["preferredProfileImage"], "gravatar");
        let f = &j["fields"];
        assert_eq!(
            keys(f),
            [
                "core",
                "social",
                "personal",
                "professional",
                "Extra \"group\"",
                "all"
            ]
        );
        // A standard group without published members is `[]`, as in Mautic.
        assert_eq!(f["personal"], json!([]));
        let email = &f["core"]["email"];
        assert_eq!(
            keys(email),
            [
                "id",
                "label",
                "alias",
                "type",
                "group",
                "object",
                "is_fixed",
                "properties",
                "default_value",
                "value",
                "normalizedValue",
            ]
        );
        assert_eq!(email["value"], "x\"y@example.org");
        assert_eq!(email["alias"], "email");
        assert_eq!(email["type"], "email");
        assert_eq!(email["object"], "lead");
        assert_eq!(f["core"]["firstname"]["normalizedValue"], "Zoë\n\u{7}");
        assert_eq!(f["core"]["lastname"]["value"], Json::Null);
        assert_eq!(f["core"]["lastname"]["normalizedValue"], "");
        assert_eq!(f["core"]["points"]["value"], 7);
        // A number's normalized value is a number too, as Mautic casts it back.
        assert_eq!(f["core"]["points"]["normalizedValue"], 7);
        let vip = &f["Extra \"group\""]["vip"];
        assert_eq!(vip["label"], "V\"I\\P\u{1}</script>");
        assert_eq!(vip["value"], 1);
        assert_eq!(vip["normalizedValue"], "Yes");
        assert!(
            f["core"].get("secret").is_none(),
            "unpublished fields stay hidden"
        );
        let all = &f["all"];
        assert_eq!(keys(all)[0], "id");
        assert_eq!(all["id"], 42);
        assert_eq!(all["email"], "x\"y@example.org");
        assert_eq!(all["vip"], 1);
        assert!(all.get("secret").is_none());
        let published = fields.iter().filter(|f| f.is_published).count();
        assert_eq!(keys(all).len(), published + 1);
    }

    #[test]
    fn minimal_stops_after_the_fields() {
        let (text, j) = written(&fields(), true);
        assert_eq!(keys(&j).last(), Some(&"fields"));
        assert!(text.ends_with("}}}"), "{text}");
        let fields = fields();
        let layout = Layout::new(&fields);
        assert_eq!(
            contact_json(&layout, &Extras::default(), &contact(), true),
            j
        );
    }
}
