//! Forms: a name, fields mapped to contact fields, and whether to record UTM tags. A
//! submission identifies the visitor (and merges an anonymous one into the known
//! contact, like tracking), updates the mapped fields and records `form.submitted`.

use serde_json::{Map, Value as Json, json};

use crate::contacts::fields::FieldSet;
use crate::contacts::input::{ContactInput, Problems, UtmInput, flag};
use crate::contacts::service::{self, SaveContext, Source, Target};
use crate::contacts::values;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{self, forms::FormRow};
use crate::time::now_ms;
use crate::timeline::{NewEvent, keys};
use crate::tracking::{self, Identity};

#[derive(Clone, Debug, PartialEq)]
pub struct FormField {
    pub alias: String,
    pub label: String,
    /// The contact field this input fills, if any.
    pub contact_field: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Form {
    pub id: i64,
    pub name: String,
    pub fields: Vec<FormField>,
    pub record_utm: bool,
    pub is_published: bool,
    pub date_added: i64,
    pub date_modified: i64,
}

impl Form {
    pub fn from_row(r: FormRow) -> Form {
        let fields = serde_json::from_str::<Vec<Json>>(&r.fields)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| {
                Some(FormField {
                    alias: f.get("alias")?.as_str()?.to_owned(),
                    label: f
                        .get("label")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    contact_field: f
                        .get("contact_field")
                        .and_then(Json::as_str)
                        .map(str::to_owned),
                })
            })
            .collect();
        Form {
            id: r.id,
            name: r.name,
            fields,
            record_utm: r.record_utm,
            is_published: r.is_published,
            date_added: r.date_added,
            date_modified: r.date_modified,
        }
    }

    fn fields_json(&self) -> String {
        Json::Array(self.fields.iter().map(|f| json!({ "alias": f.alias, "label": f.label, "contact_field": f.contact_field })).collect()).to_string()
    }

    /// Mautic's form JSON (the parts Magpie has).
    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "name": self.name,
            "isPublished": self.is_published,
            "recordUtm": self.record_utm,
            "dateAdded": crate::time::iso(self.date_added),
            "dateModified": crate::time::iso(self.date_modified),
            "fields": self.fields.iter().enumerate().map(|(i, f)| json!({
                "id": i + 1,
                "alias": f.alias,
                "label": f.label,
                "type": "text",
                "leadField": f.contact_field,
                "mappedObject": f.contact_field.as_ref().map(|_| "contact"),
                "mappedField": f.contact_field,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Parses a form definition: `name`, `fields: [{alias, label, contactField|leadField|mappedField}]`,
/// `recordUtm`, `isPublished`.
pub fn parse(body: &Json, fields: &FieldSet, existing: Option<&Form>) -> AppResult<Form> {
    let o = body
        .as_object()
        .ok_or_else(|| AppError::bad_request("the body must be a JSON object"))?;
    let mut problems = Problems::default();
    for k in o.keys() {
        if !["name", "fields", "recordUtm", "isPublished"].contains(&k.as_str()) {
            problems.add(k, "is not a form property");
        }
    }
    problems.into_result()?;
    let mut problems = Problems::default();
    let mut form = existing.cloned().unwrap_or(Form {
        id: 0,
        name: String::new(),
        fields: Vec::new(),
        record_utm: true,
        is_published: true,
        date_added: now_ms(),
        date_modified: now_ms(),
    });
    match o.get("name") {
        // A blank name is a missing one (the admin's editor always sends the field).
        Some(Json::String(n)) if n.trim().is_empty() => problems.add("name", "is required"),
        Some(Json::String(n)) if n.chars().count() <= 191 && !n.chars().any(char::is_control) => {
            form.name = n.trim().to_owned()
        }
        Some(_) => problems.add("name", "must be 1 to 191 characters"),
        None if existing.is_none() => problems.add("name", "is required"),
        None => {}
    }
    if let Some(list) = o.get("fields") {
        let items: Vec<&Json> = match list {
            Json::Array(a) => a.iter().collect(),
            Json::Object(m) => m.values().collect(),
            _ => {
                problems.add("fields", "must be a list");
                Vec::new()
            }
        };
        let mut out: Vec<FormField> = Vec::new();
        for item in items.into_iter().take(200) {
            let Some(f) = item.as_object() else {
                problems.add("fields", "each field must be an object");
                continue;
            };
            let mapped = ["contactField", "leadField", "mappedField", "contact_field"]
                .iter()
                .find_map(|k| f.get(*k).and_then(Json::as_str))
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let label = f
                .get("label")
                .and_then(Json::as_str)
                .unwrap_or("")
                .trim()
                .to_owned();
            let alias = f
                .get("alias")
                .and_then(Json::as_str)
                .map(str::to_owned)
                .or_else(|| mapped.clone())
                .unwrap_or_else(|| crate::contacts::fields::alias_from_label(&label));
            if alias.is_empty()
                || alias.len() > 64
                || !alias
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                problems.add(
                    "fields",
                    format!("field alias '{alias}' must be lowercase letters, digits and _"),
                );
                continue;
            }
            if out.iter().any(|o| o.alias == alias) {
                problems.add("fields", format!("field alias '{alias}' appears twice"));
                continue;
            }
            if let Some(m) = &mapped
                && fields.get(m).is_none()
            {
                problems.add("fields", format!("'{m}' is not a contact field"));
                continue;
            }
            out.push(FormField {
                label: if label.is_empty() {
                    alias.clone()
                } else {
                    label.chars().take(191).collect()
                },
                alias,
                contact_field: mapped,
            });
        }
        form.fields = out;
    }
    for (key, slot) in [
        ("recordUtm", &mut form.record_utm),
        ("isPublished", &mut form.is_published),
    ] {
        match o.get(key).map(flag) {
            None => {}
            Some(Some(b)) => *slot = b,
            Some(None) => problems.add(key, "must be true or false"),
        }
    }
    problems.into_result()?;
    Ok(form)
}

pub async fn create(state: &AppState, body: &Json) -> AppResult<Form> {
    let mut tx = state.store.begin().await?;
    let fields = state.fields(&mut tx).await?;
    let form = parse(body, &fields, None)?;
    let now = now_ms();
    let id = store::forms::insert(
        &mut tx,
        &form.name,
        &form.fields_json(),
        form.record_utm,
        form.is_published,
        now,
    )
    .await?;
    let form = Form::from_row(
        store::forms::get(&mut tx, id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("form vanished"))?,
    );
    tx.commit().await?;
    Ok(form)
}

pub async fn update(state: &AppState, id: i64, body: &Json) -> AppResult<Form> {
    let mut tx = state.store.begin().await?;
    let fields = state.fields(&mut tx).await?;
    let existing = Form::from_row(
        store::forms::get(&mut tx, id)
            .await?
            .ok_or_else(AppError::not_found)?,
    );
    let form = parse(body, &fields, Some(&existing))?;
    store::forms::update(
        &mut tx,
        id,
        &form.name,
        &form.fields_json(),
        form.record_utm,
        form.is_published,
        now_ms(),
    )
    .await?;
    let form = Form::from_row(
        store::forms::get(&mut tx, id)
            .await?
            .ok_or_else(AppError::not_found)?,
    );
    tx.commit().await?;
    Ok(form)
}

/// A submission as it arrives: the `mauticform[…]` values and the page it came from.
#[derive(Clone, Debug, Default)]
pub struct Submission {
    pub form_id: i64,
    pub values: Vec<(String, String)>,
    pub return_url: Option<String>,
    pub device_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: String,
}

pub struct Submitted {
    pub contact_id: i64,
    pub device_id: String,
    pub submission_id: i64,
    pub results: Map<String, Json>,
}

/// Records a submission: validates mapped values (errors keyed by form field alias),
/// identifies or merges the visitor, updates the contact, writes the submission and the
/// `form.submitted` event — all in one transaction.
pub async fn submit(state: &AppState, s: Submission) -> AppResult<Submitted> {
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    let fields = state.fields(&mut tx).await?;
    let operator = state.operator(&mut tx).await?;
    let form = Form::from_row(
        store::forms::get(&mut tx, s.form_id)
            .await?
            .filter(|f| f.is_published)
            .ok_or_else(|| {
                AppError::NotFound("This form does not exist or is not published.".into())
            })?,
    );

    let mut problems = Problems::default();
    let mut results = Map::new();
    let mut contact_values: Vec<(String, Json)> = Vec::new();
    for field in &form.fields {
        let raw = s
            .values
            .iter()
            .find(|(k, _)| *k == field.alias)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let raw: String = raw
            .chars()
            .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
            .take(65_535)
            .collect();
        results.insert(field.alias.clone(), Json::String(raw.clone()));
        let Some(alias) = &field.contact_field else {
            continue;
        };
        let Some(def) = fields.get(alias) else {
            continue;
        };
        match values::normalize(def, &Json::String(raw.clone())) {
            Ok(Some(_)) => contact_values.push((alias.clone(), Json::String(raw))),
            Ok(None) if def.is_required => problems.add(&field.alias, "is required"),
            Ok(None) => {}
            Err(m) => problems.add(&field.alias, m),
        }
    }
    problems.into_result()?;

    let device = match &s.device_id {
        Some(d) => store::tracking::devices_by_tracking_ids(&mut tx, std::slice::from_ref(d))
            .await?
            .remove(d),
        None => None,
    };
    let mut contact = device.as_ref().map(|d| d.contact_id);
    if let Identity::Switch(target) =
        tracking::identify(&mut tx, &fields, operator, contact, None, &contact_values).await?
    {
        tracking::switch_to(
            &mut tx,
            &fields,
            contact,
            device.as_ref().map(|d| d.id),
            target,
            Source::Form,
            now,
            "form",
        )
        .await?;
        contact = Some(target);
    }
    let mut input = ContactInput {
        values: contact_values,
        ip_address: s.ip.clone(),
        ..ContactInput::default()
    };
    input.values.push((
        "last_active".into(),
        Json::String(crate::time::sql_datetime(now)),
    ));
    if form.record_utm
        && let Some(url) = &s.return_url
    {
        let hit = crate::tracking::params::parse(vec![("page_url".into(), url.clone())]);
        if let Some(utm) = hit.utm {
            input.utm = vec![UtmInput {
                user_agent: Some(s.user_agent.chars().take(1024).collect()),
                remote_host: s.ip.clone(),
                ..utm
            }];
        }
    }
    let ctx = SaveContext {
        fields: fields.clone(),
        operator,
        actor: None,
        source: Source::Form,
        now,
    };
    let saved = service::save_in(
        &mut tx,
        &ctx,
        vec![(contact.map_or(Target::Create, Target::Patch), input)],
    )
    .await?
    .remove(0)?;
    let contact_id = saved.id;

    let device_id = match &device {
        Some(d) => d.tracking_id.clone(),
        None => {
            let id = tracking::token::issue_device_id(&state.tracking_secret);
            let device = crate::tracking::ua::parse(&s.user_agent).device(
                id.clone(),
                contact_id,
                &s.user_agent,
                now,
            );
            store::tracking::insert_devices(&mut tx, &[device]).await?;
            id
        }
    };
    let data = Json::Object(results.clone()).to_string();
    let submission_id = store::forms::insert_submission(
        &mut tx,
        form.id,
        contact_id,
        &data,
        s.return_url.as_deref(),
        s.ip.as_deref(),
        now,
    )
    .await?;
    let event = NewEvent::new(
        contact_id,
        keys::FORM_SUBMITTED,
        now,
        json!({ "form_id": form.id, "form_name": form.name, "submission_id": submission_id, "data": results, "referer": s.return_url }),
    )
    .source("form")
    .ref_id(submission_id);
    store::events::insert(&mut tx, &[event]).await?;
    tx.commit().await?;
    Ok(Submitted {
        contact_id,
        device_id,
        submission_id,
        results,
    })
}
