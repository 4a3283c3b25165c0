//! Companies: the fixed set of company fields under Mautic's aliases, validation of input,
//! and the write operations (one transaction each).

use serde_json::{Map, Value as Json};

use crate::contacts::input::Problems;
use crate::contacts::values;
use crate::error::{AppError, AppResult};
use crate::store::{self, Store, Value, companies::Company};
use crate::time::now_ms;

/// (Mautic alias, column, label, group).
pub const FIELDS: [(&str, &str, &str, &str); 14] = [
    ("companyname", "name", "Company Name", "core"),
    ("companyemail", "email", "Company Email", "core"),
    ("companywebsite", "website", "Website", "core"),
    ("companyaddress1", "address1", "Address Line 1", "core"),
    ("companyaddress2", "address2", "Address Line 2", "core"),
    ("companycity", "city", "City", "core"),
    ("companystate", "state", "State", "core"),
    ("companyzipcode", "zipcode", "Zip Code", "core"),
    ("companycountry", "country", "Country", "core"),
    ("companyphone", "phone", "Phone", "core"),
    (
        "companynumber_of_employees",
        "employees",
        "Number of Employees",
        "professional",
    ),
    (
        "companyannual_revenue",
        "revenue",
        "Annual Revenue",
        "professional",
    ),
    ("companyindustry", "industry", "Industry", "professional"),
    (
        "companydescription",
        "description",
        "Description",
        "professional",
    ),
];

fn column_of(key: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|(alias, column, _, _)| *alias == key || *column == key)
        .map(|(_, c, _, _)| *c)
}

/// Parses a company body (Mautic aliases or plain column names). `None` values clear.
pub fn parse(body: &Json, creating: bool) -> AppResult<(Vec<(&'static str, Value)>, bool)> {
    let o = body
        .as_object()
        .ok_or_else(|| AppError::bad_request("the body must be a JSON object of company fields"))?;
    let mut problems = Problems::default();
    let mut out = Vec::new();
    let mut force = false;
    let overwrite_blank = o
        .get("overwriteWithBlank")
        .and_then(crate::contacts::input::flag)
        .unwrap_or(false);
    for (key, raw) in o {
        if key == "force" {
            force = crate::contacts::input::flag(raw).unwrap_or(false);
            continue;
        }
        if key == "overwriteWithBlank" {
            continue;
        }
        let Some(column) = column_of(key) else {
            problems.add(key, "is not a company field");
            continue;
        };
        let text = match raw {
            Json::Null => String::new(),
            Json::String(s) => s.trim().to_owned(),
            Json::Number(n) => n.to_string(),
            _ => {
                problems.add(key, "must be a single value");
                continue;
            }
        };
        if text.is_empty() {
            if overwrite_blank && column != "name" {
                out.push((column, Value::Null(kind(column))));
            }
            continue;
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            problems.add(key, "must not contain control characters");
            continue;
        }
        let max = if column == "description" { 65_535 } else { 255 };
        if text.chars().count() > max {
            problems.add(key, format!("must be at most {max} characters"));
            continue;
        }
        let value = match column {
            "employees" => match text.parse::<i64>() {
                Ok(n) if n >= 0 => Value::Int(n),
                _ => {
                    problems.add(key, "must be a whole number");
                    continue;
                }
            },
            "revenue" => match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Value::Float(n),
                _ => {
                    problems.add(key, "must be a number");
                    continue;
                }
            },
            "email" => match values::validate_email(&text) {
                Ok(()) => Value::Text(text),
                Err(m) => {
                    problems.add(key, m);
                    continue;
                }
            },
            "website" => match values::validate_url(&text) {
                Ok(()) => Value::Text(text),
                Err(m) => {
                    problems.add(key, m);
                    continue;
                }
            },
            "country" => match values::country(&text) {
                Some(c) => Value::Text(c.to_owned()),
                None => {
                    problems.add(key, "is not a known country");
                    continue;
                }
            },
            _ => Value::Text(text),
        };
        // `companyname` and `name` are one column: the last one given counts.
        out.retain(|(c, _)| *c != column);
        out.push((column, value));
    }
    if creating && !out.iter().any(|(c, v)| *c == "name" && !v.is_null()) {
        problems.add("companyname", "is required");
    }
    problems.into_result()?;
    Ok((out, force))
}

fn kind(column: &str) -> store::Kind {
    match column {
        "employees" => store::Kind::Int,
        "revenue" => store::Kind::Float,
        _ => store::Kind::Text,
    }
}

/// Creates a company, or (unless `force`) updates the one with the same name. Returns the
/// company and whether it is new.
pub async fn create(store: &Store, body: &Json) -> AppResult<(Company, bool)> {
    let (values, force) = parse(body, true)?;
    let name = values
        .iter()
        .find(|(c, _)| *c == "name")
        .and_then(|(_, v)| v.to_text())
        .unwrap_or_default();
    let now = now_ms();
    let mut tx = store.begin().await?;
    let (id, created) = match (force, store::companies::by_name(&mut tx, &name).await?) {
        (false, Some(existing)) => {
            store::companies::update(&mut tx, existing.id, &values, now).await?;
            (existing.id, false)
        }
        _ => (store::companies::insert(&mut tx, &values, now).await?, true),
    };
    let company = store::companies::get(&mut tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("company vanished"))?;
    tx.commit().await?;
    Ok((company, created))
}

/// Edits a company: PATCH changes what the body names; PUT (`replace`) is a whole company,
/// as Mautic's form submits it, so a field the body leaves out is cleared (the name is
/// required, as on creation).
pub async fn update(store: &Store, id: i64, body: &Json, replace: bool) -> AppResult<Company> {
    let (mut values, _) = parse(body, replace)?;
    if replace {
        for (_, column, _, _) in FIELDS {
            if !values.iter().any(|(c, _)| *c == column) {
                values.push((column, Value::Null(kind(column))));
            }
        }
    }
    let mut tx = store.begin().await?;
    if store::companies::get(&mut tx, id).await?.is_none() {
        return Err(AppError::not_found());
    }
    store::companies::update(&mut tx, id, &values, now_ms()).await?;
    let company = store::companies::get(&mut tx, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok(company)
}

/// A company as Mautic shows it: `fields` by group plus `all`, under Mautic's aliases.
pub fn to_json(c: &Company) -> Json {
    let mut groups: Map<String, Json> = Map::new();
    let mut all = Map::new();
    all.insert("id".into(), Json::from(c.id));
    for (alias, column, label, group) in FIELDS {
        let value = c.get(column).map_or(Json::Null, |v| match v {
            Value::Int(i) => Json::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            other => Json::String(other.to_text().unwrap_or_default()),
        });
        let entry = serde_json::json!({ "alias": alias, "label": label, "type": if column == "employees" || column == "revenue" { "number" } else { "text" }, "group": group, "object": "company", "value": value });
        groups
            .entry(group.to_owned())
            .or_insert_with(|| Json::Object(Map::new()))
            .as_object_mut()
            .expect("object")
            .insert(alias.to_owned(), entry);
        all.insert(alias.to_owned(), value);
    }
    groups.insert("all".into(), Json::Object(all));
    serde_json::json!({
        "isPublished": true,
        "dateAdded": crate::time::iso(c.date_added),
        "dateModified": crate::time::iso(c.date_modified),
        "id": c.id,
        "fields": groups,
        "score": 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn company_bodies() {
        let (v, force) = parse(&json!({"companyname": "Acme", "companyemail": "hi@acme.example", "companynumber_of_employees": "12", "companycountry": "fr", "force": true}), true).unwrap();
        assert!(force);
        assert!(v.contains(&("name", Value::Text("Acme".into()))));
        assert!(v.contains(&("employees", Value::Int(12))));
        assert!(v.contains(&("country", Value::Text("France".into()))));
        for bad in [
            json!({"companyemail": "x@y.z"}),
            json!({"companyname": "A", "companyemail": "nope"}),
            json!({"companyname": "A", "companynumber_of_employees": "many"}),
            json!({"companyname": "A", "colour": "red"}),
            json!({"companyname": "A", "companywebsite": "javascript:alert(1)"}),
        ] {
            assert!(parse(&bad, true).is_err(), "{bad}");
        }
    }
}
