//! Request extractors that answer bad input with Mautic-shaped errors: bodies (JSON or
//! form-encoded, size-capped), PHP-style query strings, and numeric path ids.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::{Map, Value as Json};

use crate::contacts::search::id_list;
use crate::error::AppError;
use crate::state::SharedState;
use crate::store::entity_list::{EntityQuery, ListColumn, find_column, where_conditions};
use crate::store::{Backend, Params};

/// A request body as JSON: `application/json`, or `application/x-www-form-urlencoded`
/// with PHP-style keys (what Mautic's PHP client sends).
pub struct ApiBody(pub Json);

impl FromRequest<SharedState> for ApiBody {
    type Rejection = AppError;

    async fn from_request(
        req: Request<Body>,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = read_body(req.into_body(), state.config.file.api.max_body_bytes).await?;
        match content_type.as_deref() {
            Some("application/json") | None => {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Err(AppError::bad_request(
                        "the request body is empty; send a JSON object",
                    ));
                }
                serde_json::from_slice(&bytes)
                    .map(ApiBody)
                    .map_err(|e| AppError::bad_request(format!("malformed JSON: {e}")))
            }
            Some(ct) if ct.ends_with("+json") => serde_json::from_slice(&bytes)
                .map(ApiBody)
                .map_err(|e| AppError::bad_request(format!("malformed JSON: {e}"))),
            Some("application/x-www-form-urlencoded") => {
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| AppError::bad_request("the form body is not valid UTF-8"))?;
                let map = super::php_query::parse(text).map_err(AppError::bad_request)?;
                Ok(ApiBody(Json::Object(map)))
            }
            Some(other) => Err(AppError::UnsupportedMediaType(format!(
                "unsupported content type '{other}'; send application/json or application/x-www-form-urlencoded"
            ))),
        }
    }
}

/// How much of an oversized body is read and thrown away so the client, still sending,
/// receives the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// A body that could not be read: 408 when it came too slowly (`serve::PacedBody`), else
/// a 400 saying `message`.
pub fn body_failed(e: &(dyn std::error::Error + 'static), message: String) -> AppError {
    if super::serve::too_slow(e) {
        AppError::RequestTimeout(super::serve::TOO_SLOW.into())
    } else {
        AppError::bad_request(message)
    }
}

/// Reads a body up to `limit` bytes; more is a 413.
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, AppError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| body_failed(&e, "the request body could not be read".into()))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > limit + DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > limit {
        return Err(AppError::PayloadTooLarge(format!(
            "the request body is larger than {limit} bytes"
        )));
    }
    Ok(buf.into())
}

/// An optional body: absent (empty) is `None`, anything present must parse.
impl axum::extract::OptionalFromRequest<SharedState> for ApiBody {
    type Rejection = AppError;

    async fn from_request(
        req: Request<Body>,
        state: &SharedState,
    ) -> Result<Option<Self>, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(body, state.config.file.api.max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let req = Request::from_parts(parts, Body::from(bytes));
        <ApiBody as FromRequest<SharedState>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// The query string as nested JSON (`where[0][col]=…`).
pub struct PhpQuery(pub Map<String, Json>);

impl<S: Send + Sync> FromRequestParts<S> for PhpQuery {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        super::php_query::parse(q)
            .map(PhpQuery)
            .map_err(AppError::bad_request)
    }
}

impl PhpQuery {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Json::as_str)
    }

    /// A non-negative integer parameter; absent or empty gives `default`.
    pub fn int(&self, key: &str, default: i64) -> Result<i64, AppError> {
        match self.0.get(key) {
            None => Ok(default),
            Some(Json::String(s)) if s.trim().is_empty() => Ok(default),
            Some(Json::String(s)) => {
                s.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        AppError::bad_request(format!("{key} must be a non-negative whole number"))
                    })
            }
            Some(_) => Err(AppError::bad_request(format!("{key} must be a number"))),
        }
    }

    /// `orderByDir`: `Some(true)` for desc, `Some(false)` for asc, `None` when absent.
    pub fn descending(&self) -> Result<Option<bool>, AppError> {
        match self.str("orderByDir").map(str::trim).unwrap_or("") {
            "" => Ok(None),
            d if d.eq_ignore_ascii_case("asc") => Ok(Some(false)),
            d if d.eq_ignore_ascii_case("desc") => Ok(Some(true)),
            d => Err(AppError::bad_request(format!(
                "orderByDir must be asc or desc, not '{d}'"
            ))),
        }
    }

    /// The asked order: `orderBy` and `orderByDir`, or Mautic's `order[0][col]` and
    /// `order[0][dir]`, as its PHP client sends them. The column name (`None`: the list's
    /// default) and `Some(true)` for descending; one column only.
    pub fn order(&self) -> Result<(Option<&str>, Option<bool>), AppError> {
        let by = self.str("orderBy").map(str::trim).filter(|s| !s.is_empty());
        let Some(order) = self.0.get("order").filter(|o| !o.is_null()) else {
            return Ok((by, self.descending()?));
        };
        let items: Vec<&Json> = match order {
            Json::Array(a) => a.iter().collect(),
            Json::Object(o) => o.values().collect(),
            _ => {
                return Err(AppError::bad_request(
                    "order must be order[0][col]=…&order[0][dir]=…",
                ));
            }
        };
        let [item] = items.as_slice() else {
            return Err(AppError::bad_request(
                "order: one column only (order[0][col] and order[0][dir])",
            ));
        };
        if by.is_some() {
            return Err(AppError::bad_request("give orderBy or order, not both"));
        }
        let col = item
            .get("col")
            .or_else(|| item.get("column"))
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AppError::bad_request("order: missing col"))?;
        let dir = match item.get("dir").and_then(Json::as_str).map(str::trim) {
            None | Some("") => None,
            Some(d) if d.eq_ignore_ascii_case("asc") => Some(false),
            Some(d) if d.eq_ignore_ascii_case("desc") => Some(true),
            Some(d) => {
                return Err(AppError::bad_request(format!(
                    "order: dir must be asc or desc, not '{d}'"
                )));
            }
        };
        Ok((Some(col), dir))
    }

    /// `search`, `where`, `published`, the order (`order`), `start` and `limit` of a
    /// simple entity list, as Mautic's API takes them. `search` is free text and/or
    /// `ids:1,2,3`; `columns` are those `orderBy` and `where` may name; `default` is the
    /// order without one. `limit=0` means as many as allowed (1,000).
    pub fn entity_query(
        &self,
        columns: &'static [ListColumn],
        default: (&'static str, bool),
        default_limit: i64,
    ) -> Result<EntityQuery, AppError> {
        let mut ids = None;
        let mut text = Vec::new();
        for token in self.str("search").unwrap_or("").split_whitespace() {
            match token.get(..4).filter(|p| p.eq_ignore_ascii_case("ids:")) {
                Some(_) => {
                    let list = id_list(&token[4..]).ok_or_else(|| {
                        AppError::bad_request(format!(
                            "search: '{token}' must list ids, like ids:1,2,3"
                        ))
                    })?;
                    if list.len() > 1000 {
                        return Err(AppError::bad_request("search: ids: lists at most 1000 ids"));
                    }
                    ids = Some(list);
                }
                None => text.push(token),
            }
        }
        let (by, descending) = self.order()?;
        let order_by = match by {
            None => (default.0, descending.unwrap_or(default.1)),
            Some(name) => {
                let column = find_column(columns, name).ok_or_else(|| {
                    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
                    AppError::bad_request(format!(
                        "orderBy must be one of {}, not '{name}'",
                        names.join(", ")
                    ))
                })?;
                (column.sql, descending.unwrap_or(false))
            }
        };
        let wheres =
            crate::contacts::search::where_filters(self.0.get("where").unwrap_or(&Json::Null))?;
        // Checked here, so that listing never meets a bad filter.
        where_conditions(Backend::Sqlite, &mut Params::default(), columns, &wheres)
            .map_err(AppError::bad_request)?;
        let limit = match self.int("limit", default_limit)? {
            0 => 1000,
            n => n.min(1000),
        };
        Ok(EntityQuery {
            ids,
            text: Some(text.join(" ")).filter(|t| !t.is_empty()),
            wheres,
            published_only: self.flag("published"),
            columns,
            order_by,
            offset: self.int("start", 0)?,
            limit,
        })
    }

    pub fn flag(&self, key: &str) -> bool {
        self.0
            .get(key)
            .and_then(crate::contacts::input::flag)
            .unwrap_or(false)
    }
}

/// A numeric id from the path; anything else is "not found".
pub fn id(s: &str) -> Result<i64, AppError> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(AppError::not_found)
}
