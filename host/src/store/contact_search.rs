//! Turns a parsed search (and Mautic `where` filters) into SQL, and runs the list query.
//!
//! Index strategy, the same on both backends:
//! - prefix matches on a field become a range on its `lower()` index
//!   (`lower(col) >= 'ada' AND lower(col) < 'ada' || U+10FFFF`), which an index answers
//!   whatever the pattern (LIKE with a bound parameter would not be);
//! - contains and wildcard matches on the free-text columns first narrow candidates with
//!   the trigram index (SQLite FTS5 `trigram`, PostgreSQL `pg_trgm`), then check exactly;
//! - everything else is a plain predicate.

use super::db::{Backend, Exec, Kind, Params, Value};
use super::fields::{column, search_expr};
use super::fold::fold;
use crate::contacts::Contact;
use crate::contacts::fields::{FieldSet, FieldType, SEARCH_TEXT_COLUMNS, Storage};
use crate::contacts::search::{Compare, Cond, Expr, Match};

/// A Mautic `where[]` filter, or (`expr` `orX` / `andX`) a group of them in `group`,
/// as Mautic's query builder and its PHP client send them.
#[derive(Clone, Debug, PartialEq)]
pub struct WhereFilter {
    pub col: String,
    pub expr: String,
    pub val: WhereValue,
    pub group: Vec<WhereFilter>,
}

impl WhereFilter {
    /// `col` equals `value`.
    pub fn eq(col: &str, value: impl Into<String>) -> WhereFilter {
        WhereFilter {
            col: col.to_owned(),
            expr: "eq".to_owned(),
            val: WhereValue::One(value.into()),
            group: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum WhereValue {
    None,
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Asc,
    Desc,
}

pub struct ListQuery<'a> {
    pub search: Option<&'a Expr>,
    pub wheres: &'a [WhereFilter],
    pub order_by: Option<&'a str>,
    pub dir: Dir,
    pub offset: i64,
    /// `None`: no limit.
    pub limit: Option<i64>,
    /// The user asking (for `is:mine`).
    pub me: Option<i64>,
}

/// SQL for one column that can be filtered or sorted: its expression and kind.
pub struct Col {
    pub sql: String,
    pub kind: Kind,
    /// Stored as milliseconds (compare with parsed date-times).
    pub timestamp: bool,
    /// A date or date-time field, stored as sortable text (`2024-05-01`, `2024-05-01
    /// 12:00:00` in UTC): compared with values written the same way.
    pub dated: Option<FieldType>,
}

/// Maps an API column name (field alias, snake or camel system name) to SQL.
fn resolve_column(fields: &FieldSet, name: &str) -> Option<Col> {
    let name = name.strip_prefix("l.").unwrap_or(name);
    let system = |sql: &str, timestamp: bool| {
        Some(Col {
            sql: format!("c.{sql}"),
            kind: Kind::Int,
            timestamp,
            dated: None,
        })
    };
    match name {
        "id" => return system("id", false),
        "date_added" | "dateAdded" => return system("date_added", true),
        "date_modified" | "dateModified" => return system("date_modified", true),
        "date_identified" | "dateIdentified" => return system("date_identified", true),
        "last_active" | "lastActive" => return system("last_active", true),
        "owner_id" | "owner" => return system("owner_id", false),
        "stage_id" | "stage" => return system("stage_id", false),
        "points" => return system("points", false),
        _ => {}
    }
    let f = fields.get(name)?;
    match f.storage() {
        Storage::Column => Some(Col {
            sql: format!("c.{}", column(&f.alias)),
            kind: f.kind(),
            timestamp: false,
            dated: matches!(f.field_type, FieldType::Date | FieldType::Datetime)
                .then_some(f.field_type),
        }),
        Storage::Points => system("points", false),
        Storage::Timestamp => system("last_active", true),
    }
}

struct Compiler<'a> {
    backend: Backend,
    fields: &'a FieldSet,
    me: Option<i64>,
    p: Params,
    /// The query may match anonymous visitors: the known-only indexes (trigram, partial
    /// field indexes) cannot answer it alone.
    anonymous: bool,
    /// Subqueries as per-row probes (`EXISTS`) rather than collected id lists (`IN`), and
    /// PostgreSQL's free text as a per-row test: right when the page walks an ordered
    /// index (last active; exports: id) and stops after a page.
    probe: bool,
}

/// Whether a LIKE pattern ends with an escape character that escapes nothing.
fn lone_trailing_escape(v: &WhereValue) -> bool {
    let text = match v {
        WhereValue::One(s) => s.as_str(),
        WhereValue::Many(v) if v.len() == 1 => v[0].as_str(),
        _ => return false,
    };
    text.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Escapes LIKE metacharacters except the user's `%` wildcards.
fn like_escape_keep_percent(s: &str) -> String {
    s.replace('\\', "\\\\").replace('_', "\\_")
}

fn like_escape_all(s: &str) -> String {
    like_escape_keep_percent(s).replace('%', "\\%")
}

impl Compiler<'_> {
    fn expr(&mut self, e: &Expr) -> Result<String, String> {
        Ok(match e {
            Expr::And(items) => {
                let parts: Result<Vec<_>, _> = items.iter().map(|i| self.expr(i)).collect();
                format!("({})", parts?.join(" AND "))
            }
            Expr::Or(items) => {
                let parts: Result<Vec<_>, _> = items.iter().map(|i| self.expr(i)).collect();
                format!("({})", parts?.join(" OR "))
            }
            // Known contacts only: "not anonymous" holds for every row.
            Expr::Not(inner) if !self.anonymous && **inner == Expr::Cond(Cond::Anonymous) => {
                "1 = 1".to_owned()
            }
            // NULL-safe: "not matching" includes rows where the column is empty.
            Expr::Not(inner) => format!("(NOT (({}) IS TRUE))", self.expr(inner)?),
            Expr::Cond(c) => self.cond(c)?,
        })
    }

    /// A text match on an SQL expression that is already case-folded.
    fn text_match(&mut self, folded_expr: &str, m: &Match) -> String {
        match m {
            Match::Prefix(v) => {
                let lo = fold(v);
                let hi = format!("{lo}\u{10FFFF}");
                format!(
                    "({folded_expr} >= {} AND {folded_expr} < {})",
                    self.p.push(lo),
                    self.p.push(hi)
                )
            }
            Match::Exact(v) => format!("{folded_expr} = {}", self.p.push(fold(v))),
            Match::Like(v) => {
                let pattern = like_escape_keep_percent(&fold(v));
                format!("{folded_expr} LIKE {} ESCAPE '\\'", self.p.push(pattern))
            }
            Match::Contains(v) => {
                let pattern = format!("%{}%", like_escape_all(&fold(v)));
                format!("{folded_expr} LIKE {} ESCAPE '\\'", self.p.push(pattern))
            }
        }
    }

    /// A trigram-index condition for text every match must contain (each literal run of a
    /// pattern), or `None` when no run is long enough for trigrams or the query may match
    /// anonymous visitors (the trigram index holds known contacts only).
    fn trigram(&mut self, pattern_runs: &[&str]) -> Option<String> {
        if self.anonymous {
            return None;
        }
        let runs: Vec<String> = pattern_runs
            .iter()
            .map(|r| fold(r))
            .filter(|r| r.chars().count() >= 3)
            .collect();
        if runs.is_empty() {
            return None;
        }
        Some(match self.backend {
            Backend::Sqlite => {
                // A trigram phrase query is a substring match answered from the index alone.
                let query = runs
                    .iter()
                    .map(|r| format!("\"{}\"", r.replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let query = self.p.push(query);
                let patterns: Vec<String> = runs
                    .iter()
                    .map(|r| self.p.push(format!("%{}%", like_escape_all(r))))
                    .collect();
                format!(
                    "c.id IN ({})",
                    super::free_text::matching_ids(&query, &patterns)
                )
            }
            Backend::Postgres => {
                // Walking the last-active index (`probe`), each row is tested with
                // `strpos`, the same test, which the trigram index cannot answer: the
                // planner, misled by its estimate of a `LIKE '%…%'` (94 rows for 48,195
                // at a million contacts), would otherwise collect every match through the
                // index and sort them (78 ms instead of 5).
                let probe = self.probe;
                let parts: Vec<String> = runs
                    .iter()
                    .map(|r| {
                        if probe {
                            format!("strpos(c.search_text, {}) > 0", self.p.push(r.to_string()))
                        } else {
                            format!(
                                "c.search_text LIKE {} ESCAPE '\\'",
                                self.p.push(format!("%{}%", like_escape_all(r)))
                            )
                        }
                    })
                    .collect();
                format!("({})", parts.join(" AND "))
            }
        })
    }

    /// The literal runs of a match (what every matching value contains).
    fn runs(m: &Match) -> Vec<&str> {
        match m {
            Match::Prefix(v) | Match::Exact(v) | Match::Contains(v) => vec![v.as_str()],
            Match::Like(v) => v.split('%').filter(|r| !r.is_empty()).collect(),
        }
    }

    fn cond(&mut self, c: &Cond) -> Result<String, String> {
        let b = self.backend;
        Ok(match c {
            Cond::Text(m) => {
                let text = match b {
                    Backend::Sqlite => free_text_sqlite(),
                    Backend::Postgres => "c.search_text".to_owned(),
                };
                match m {
                    Match::Exact(_) => {
                        let parts: Vec<String> = SEARCH_TEXT_COLUMNS
                            .iter()
                            .map(|col| {
                                self.text_match(
                                    &search_expr(b, &format!("c.{}", column(col)), Kind::Text),
                                    m,
                                )
                            })
                            .collect();
                        format!("({})", parts.join(" OR "))
                    }
                    // The trigram match is exact for a plain substring.
                    Match::Contains(_) => match self.trigram(&Self::runs(m)) {
                        Some(t) => t,
                        None => self.text_match(&text, m),
                    },
                    _ => {
                        let exact = self.text_match(&text, m);
                        match self.trigram(&Self::runs(m)) {
                            Some(t) => format!("({t} AND {exact})"),
                            None => exact,
                        }
                    }
                }
            }
            Cond::Field { alias, m } if alias == "email" && email_suffix(m).is_some() => {
                // The index holds each email's reversed domain ("gro.elpmaxe@"): a suffix
                // within the domain (`%.org`) is a range of it; one reaching into the local
                // part (`%smith@example.org`) is that domain exactly, then the text match.
                let suffix = fold(email_suffix(m).unwrap_or_default());
                let col = match b {
                    Backend::Sqlite => "c.email_rev".to_owned(),
                    Backend::Postgres => "(c.email_rev COLLATE \"C\")".to_owned(),
                };
                match suffix.rfind('@') {
                    Some(at) => {
                        let key: String = suffix[at..].chars().rev().collect();
                        let domain = format!("{col} = {}", self.p.push(key));
                        if at == 0 {
                            domain
                        } else {
                            let kind = self.fields.get("email").map_or(Kind::Text, |f| f.kind());
                            let email = search_expr(b, "c.email", kind);
                            format!("({domain} AND {})", self.text_match(&email, m))
                        }
                    }
                    None => {
                        let lo: String = suffix.chars().rev().collect();
                        let hi = format!("{lo}\u{10FFFF}");
                        format!(
                            "({col} >= {} AND {col} < {})",
                            self.p.push(lo),
                            self.p.push(hi)
                        )
                    }
                }
            }
            Cond::Field { alias, m } => {
                let f = self
                    .fields
                    .get(alias)
                    .ok_or_else(|| format!("unknown field '{alias}'"))?;
                let expr = search_expr(b, &format!("c.{}", column(&f.alias)), f.kind());
                let exact = self.text_match(&expr, m);
                let needs_trigram = matches!(m, Match::Like(_) | Match::Contains(_));
                if needs_trigram && SEARCH_TEXT_COLUMNS.contains(&f.alias.as_str()) {
                    match self.trigram(&Self::runs(m)) {
                        Some(pre) => format!("({pre} AND {exact})"),
                        None => exact,
                    }
                } else {
                    exact
                }
            }
            Cond::Number { alias, op, value } => {
                let col = resolve_column(self.fields, alias)
                    .ok_or_else(|| format!("unknown field '{alias}'"))?;
                // A whole-number column against a fraction: `points:<5.5` is `<= 5`,
                // `points:>5.5` is `> 5`, `points:5.5` matches nothing.
                if col.kind != Kind::Float && value.fract() != 0.0 {
                    let below = Value::Int(value.floor() as i64);
                    return Ok(match op {
                        Compare::Eq => "1 = 0".to_owned(),
                        Compare::Lt | Compare::Lte => {
                            format!("{} <= {}", col.sql, self.p.push(below))
                        }
                        Compare::Gt | Compare::Gte => {
                            format!("{} > {}", col.sql, self.p.push(below))
                        }
                    });
                }
                let v = if col.kind == Kind::Float {
                    Value::Float(*value)
                } else {
                    Value::Int(*value as i64)
                };
                let op = match op {
                    Compare::Eq => "=",
                    Compare::Lt => "<",
                    Compare::Lte => "<=",
                    Compare::Gt => ">",
                    Compare::Gte => ">=",
                };
                format!("{} {op} {}", col.sql, self.p.push(v))
            }
            Cond::Name(m) => {
                let first = self.text_match(&search_expr(b, "n.firstname", Kind::Text), m);
                let last = self.text_match(&search_expr(b, "n.lastname", Kind::Text), m);
                // Two index ranges joined by UNION: an OR across two indexes makes SQLite
                // scan the table.
                let known = if self.anonymous {
                    ""
                } else {
                    "n.date_identified IS NOT NULL AND "
                };
                let by_part = format!(
                    "c.id IN (SELECT n.id FROM contacts n WHERE {known}{first} UNION ALL SELECT n.id FROM contacts n WHERE {known}{last})"
                );
                let full_expr = match b {
                    Backend::Sqlite => "fold(coalesce(c.firstname, '') || ' ' || coalesce(c.lastname, ''))".to_owned(),
                    Backend::Postgres => "(lower(coalesce(c.firstname, '') || ' ' || coalesce(c.lastname, '')) COLLATE \"C\")".to_owned(),
                };
                let runs = Self::runs(m);
                if runs.iter().any(|r| r.contains(' ')) {
                    let full = self.text_match(&full_expr, m);
                    match self.trigram(&runs) {
                        Some(pre) => format!("({by_part} OR ({pre} AND {full}))"),
                        None => format!("({by_part} OR {full})"),
                    }
                } else {
                    by_part
                }
            }
            Cond::Owner(m) => {
                let name = self.text_match(&search_expr(b, "u.username", Kind::Text), m);
                let first = self.text_match(&search_expr(b, "u.first_name", Kind::Text), m);
                let last = self.text_match(&search_expr(b, "u.last_name", Kind::Text), m);
                format!(
                    "c.owner_id IN (SELECT u.id FROM users u WHERE {name} OR {first} OR {last})"
                )
            }
            Cond::Tag(m) => {
                let mut t = self.text_match(&search_expr(b, "t.tag", Kind::Text), m);
                if !self.anonymous {
                    t.push_str(" AND ct.known = 1");
                }
                if self.probe {
                    format!(
                        "EXISTS (SELECT 1 FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id AND {t})"
                    )
                } else {
                    format!(
                        "c.id IN (SELECT ct.contact_id FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE {t})"
                    )
                }
            }
            Cond::Stage(m) => {
                let s = self.text_match(&search_expr(b, "s.name", Kind::Text), m);
                format!("c.stage_id IN (SELECT s.id FROM stages s WHERE {s})")
            }
            Cond::Ip(m) => {
                let ip = self.text_match("i.ip", m);
                if self.probe {
                    format!(
                        "EXISTS (SELECT 1 FROM contact_ips i WHERE i.contact_id = c.id AND {ip})"
                    )
                } else {
                    format!("c.id IN (SELECT i.contact_id FROM contact_ips i WHERE {ip})")
                }
            }
            Cond::OwnerIds(ids) | Cond::StageIds(ids) if ids.is_empty() => "1 = 0".to_owned(),
            Cond::OwnerIds(ids) => {
                let list = self.p.list(ids.iter().copied());
                format!("c.owner_id IN ({list})")
            }
            Cond::StageIds(ids) => {
                let list = self.p.list(ids.iter().copied());
                format!("c.stage_id IN ({list})")
            }
            Cond::Ids(ids) => {
                let list = self.p.list(ids.iter().copied());
                format!("c.id IN ({list})")
            }
            Cond::Anonymous => "c.date_identified IS NULL".to_owned(),
            Cond::Unowned => "c.owner_id IS NULL".to_owned(),
            Cond::Mine => match self.me {
                Some(me) => format!("c.owner_id = {}", self.p.push(me)),
                None => "1 = 0".to_owned(),
            },
            // Segments do not exist yet: no contact is in one.
            Cond::Segment(_) | Cond::Common(_) => "1 = 0".to_owned(),
        })
    }

    fn where_filter(&mut self, w: &WhereFilter) -> Result<String, String> {
        let fields = self.fields;
        where_sql(self.backend, &mut self.p, w, &|name| {
            resolve_column(fields, name)
        })
    }
}

/// One `where` filter, or a group of them, as SQL over the columns `resolve` names (the
/// contacts' here; the simple entity lists' in `entity_list`). Errors are messages for a
/// 400.
pub fn where_sql(
    backend: Backend,
    p: &mut Params,
    w: &WhereFilter,
    resolve: &dyn Fn(&str) -> Option<Col>,
) -> Result<String, String> {
    if let Some(joiner) = group_joiner(&w.expr) {
        let parts = w
            .group
            .iter()
            .map(|inner| where_sql(backend, p, inner, resolve))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(format!("({})", parts.join(joiner)));
    }
    let col = resolve(&w.col).ok_or_else(|| format!("where: unknown column '{}'", w.col))?;
    let text = col.kind == Kind::Text;
    let folded = if text {
        search_expr(backend, &col.sql, Kind::Text)
    } else {
        col.sql.clone()
    };
    // LIKE patterns are text even on date fields.
    let patterned = matches!(w.expr.as_str(), "like" | "notLike");
    let value = |s: &str, p: &mut Params| -> Result<String, String> {
        let v = if col.timestamp {
            Value::Int(
                crate::time::parse_datetime(s)
                    .ok_or_else(|| format!("where: '{}' is not a date", w.col))?
                    .timestamp_millis(),
            )
        } else if let Some(dated) = col.dated.filter(|_| !patterned) {
            let stored = match dated {
                FieldType::Date => {
                    crate::time::parse_written_date(s).map(|d| d.format("%Y-%m-%d").to_string())
                }
                _ => crate::time::parse_datetime(s)
                    .map(|t| crate::time::sql_datetime(t.timestamp_millis())),
            };
            Value::Text(stored.ok_or_else(|| format!("where: '{}' is not a date", w.col))?)
        } else {
            match col.kind {
                Kind::Text => Value::Text(fold(s)),
                // `true` and `false` for flags (`isPublished`), which are 1 and 0.
                Kind::Int => Value::Int(match s.trim() {
                    "true" => 1,
                    "false" => 0,
                    n => n
                        .parse()
                        .map_err(|_| format!("where: {} takes a whole number", w.col))?,
                }),
                Kind::Float => Value::Float(
                    s.trim()
                        .parse()
                        .ok()
                        .filter(|x: &f64| x.is_finite())
                        .ok_or_else(|| format!("where: {} takes a number", w.col))?,
                ),
            }
        };
        Ok(p.push(v))
    };
    let one = |p: &mut Params| -> Result<String, String> {
        match &w.val {
            WhereValue::One(s) => value(s, p),
            WhereValue::Many(v) if v.len() == 1 => value(&v[0], p),
            _ => Err(format!("where: {} needs one value", w.expr)),
        }
    };
    let many = |p: &mut Params| -> Result<Vec<String>, String> {
        let items: Vec<String> = match &w.val {
            WhereValue::One(s) => s
                .split(',')
                .map(|x| x.trim().trim_matches('"').to_owned())
                .collect(),
            WhereValue::Many(v) => v.clone(),
            WhereValue::None => Vec::new(),
        };
        if items.is_empty() || items.len() > 1000 {
            return Err(format!("where: {} needs 1 to 1000 values", w.expr));
        }
        items.iter().map(|s| value(s, p)).collect()
    };
    Ok(match w.expr.as_str() {
        "eq" => format!("{folded} = {}", one(p)?),
        "neq" => format!("({folded} <> {} OR {} IS NULL)", one(p)?, col.sql),
        "lt" => format!("{folded} < {}", one(p)?),
        "lte" => format!("{folded} <= {}", one(p)?),
        "gt" => format!("{folded} > {}", one(p)?),
        "gte" => format!("{folded} >= {}", one(p)?),
        "like" | "notLike" if !text => {
            return Err(format!("where: {} works on text columns only", w.expr));
        }
        // `\` escapes `%`, `_` and itself on both databases, as in Mautic's MySQL.
        "like" | "notLike" if lone_trailing_escape(&w.val) => {
            return Err(format!(
                "where: a {} pattern cannot end with a lone \\ (write \\\\ for a backslash)",
                w.expr
            ));
        }
        "like" => format!("{folded} LIKE {} ESCAPE '\\'", one(p)?),
        "notLike" => format!(
            "({folded} NOT LIKE {} ESCAPE '\\' OR {} IS NULL)",
            one(p)?,
            col.sql
        ),
        "isNull" => format!("{} IS NULL", col.sql),
        "isNotNull" => format!("{} IS NOT NULL", col.sql),
        "isEmpty" if text => format!("({} IS NULL OR {} = '')", col.sql, col.sql),
        "isNotEmpty" if text => format!("({} IS NOT NULL AND {} <> '')", col.sql, col.sql),
        "isEmpty" => format!("{} IS NULL", col.sql),
        "isNotEmpty" => format!("{} IS NOT NULL", col.sql),
        "in" => format!("{folded} IN ({})", many(p)?.join(", ")),
        "notIn" => format!(
            "({folded} NOT IN ({}) OR {} IS NULL)",
            many(p)?.join(", "),
            col.sql
        ),
        "between" | "notBetween" => {
            let v = many(p)?;
            if v.len() != 2 {
                return Err(format!("where: {} needs two values", w.expr));
            }
            let cond = format!("{folded} BETWEEN {} AND {}", v[0], v[1]);
            if w.expr == "between" {
                cond
            } else {
                format!("NOT ({cond})")
            }
        }
        other => {
            return Err(format!(
                "where: unknown expression '{other}' (use eq, neq, lt, lte, gt, gte, like, notLike, isNull, isNotNull, isEmpty, isNotEmpty, in, notIn, between, notBetween, orX, andX)"
            ));
        }
    })
}

/// `orX` and `andX`: how a group's filters join.
fn group_joiner(expr: &str) -> Option<&'static str> {
    match expr {
        "orX" => Some(" OR "),
        "andX" => Some(" AND "),
        _ => None,
    }
}

/// The free-text string of a contact, for exact checks after the SQLite FTS prefilter
/// (mirrors the FTS trigger and PostgreSQL's generated `search_text`).
fn free_text_sqlite() -> String {
    super::free_text::indexed_text("c")
}

/// `%literal` on an email (no other wildcard): the suffix, answered by the reversed index.
fn email_suffix(m: &Match) -> Option<&str> {
    match m {
        Match::Like(v) => v
            .strip_prefix('%')
            .filter(|rest| !rest.is_empty() && !rest.contains('%') && !rest.contains('_')),
        _ => None,
    }
}

/// Builds the WHERE clause; errors are messages for a 400.
fn where_clause(
    backend: Backend,
    fields: &FieldSet,
    q: &ListQuery<'_>,
    probe: bool,
) -> Result<(String, Params), String> {
    let anonymous = q.search.is_some_and(Expr::mentions_anonymous);
    let mut c = Compiler {
        backend,
        fields,
        me: q.me,
        p: Params::default(),
        anonymous,
        probe,
    };
    let mut conds = Vec::new();
    if !anonymous {
        conds.push("c.date_identified IS NOT NULL".to_owned());
    }
    if let Some(e) = q.search {
        conds.push(c.expr(e)?);
    }
    for w in q.wheres {
        conds.push(c.where_filter(w)?);
    }
    let sql = if conds.is_empty() {
        "1 = 1".to_owned()
    } else {
        conds.join(" AND ")
    };
    Ok((sql, c.p))
}

/// The WHERE condition of a list query over `contacts c`, with its parameters, for
/// callers that page through every match themselves (exports walk by id, so
/// subqueries are per-row probes).
pub async fn condition(
    db: &mut impl Exec,
    fields: &FieldSet,
    q: &ListQuery<'_>,
) -> Result<(String, Params), ListError> {
    let resolved = match q.search {
        Some(e) => Some(resolve(db, e).await?),
        None => None,
    };
    let q = &ListQuery {
        search: resolved.as_ref(),
        wheres: q.wheres,
        order_by: q.order_by,
        dir: q.dir,
        offset: q.offset,
        limit: q.limit,
        me: q.me,
    };
    where_clause(db.backend(), fields, q, true).map_err(ListError::BadQuery)
}

/// The ORDER BY clause; unknown columns are an error.
fn order_clause(fields: &FieldSet, q: &ListQuery<'_>) -> Result<String, String> {
    let dir = match q.dir {
        Dir::Asc => "ASC",
        Dir::Desc => "DESC",
    };
    let nulls = match q.dir {
        Dir::Asc => "NULLS FIRST",
        Dir::Desc => "NULLS LAST",
    };
    let col = match q.order_by {
        None => "c.last_active".to_owned(),
        Some(name) => {
            resolve_column(fields, name)
                .ok_or_else(|| format!("cannot order by '{name}'"))?
                .sql
        }
    };
    if col == "c.id" {
        return Ok(format!("c.id {dir}"));
    }
    Ok(format!("{col} {dir} {nulls}, c.id {dir}"))
}

pub enum ListError {
    BadQuery(String),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for ListError {
    fn from(e: sqlx::Error) -> Self {
        ListError::Db(e)
    }
}

/// Resolves lookups on small tables (owners, stages) to ids, so the big query uses the
/// contacts' own indexes.
async fn resolve(db: &mut impl Exec, e: &Expr) -> Result<Expr, sqlx::Error> {
    Ok(match e {
        Expr::And(items) => Expr::And(Box::pin(resolve_all(db, items)).await?),
        Expr::Or(items) => Expr::Or(Box::pin(resolve_all(db, items)).await?),
        Expr::Not(inner) => Expr::Not(Box::new(Box::pin(resolve(db, inner)).await?)),
        Expr::Cond(Cond::Owner(m)) => {
            let backend = db.backend();
            let mut c = Compiler {
                backend,
                fields: &FieldSet::default(),
                me: None,
                p: Params::default(),
                anonymous: true,
                probe: false,
            };
            let name = c.text_match(&search_expr(backend, "u.username", Kind::Text), m);
            let first = c.text_match(&search_expr(backend, "u.first_name", Kind::Text), m);
            let last = c.text_match(&search_expr(backend, "u.last_name", Kind::Text), m);
            let sql = format!("SELECT u.id FROM users u WHERE {name} OR {first} OR {last}");
            Expr::Cond(Cond::OwnerIds(
                db.fetch_all(&sql, c.p.values)
                    .await?
                    .iter()
                    .map(|r| r.i64("id"))
                    .collect(),
            ))
        }
        Expr::Cond(Cond::Stage(m)) => {
            let backend = db.backend();
            let mut c = Compiler {
                backend,
                fields: &FieldSet::default(),
                me: None,
                p: Params::default(),
                anonymous: true,
                probe: false,
            };
            let s = c.text_match(&search_expr(backend, "s.name", Kind::Text), m);
            let sql = format!("SELECT s.id FROM stages s WHERE {s}");
            Expr::Cond(Cond::StageIds(
                db.fetch_all(&sql, c.p.values)
                    .await?
                    .iter()
                    .map(|r| r.i64("id"))
                    .collect(),
            ))
        }
        other => other.clone(),
    })
}

async fn resolve_all(db: &mut impl Exec, items: &[Expr]) -> Result<Vec<Expr>, sqlx::Error> {
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        out.push(Box::pin(resolve(db, i)).await?);
    }
    Ok(out)
}

/// The total for a query: the trigger-kept counters when nothing filters, an index-only
/// count for a lone free-text or tag condition, else a plain count.
async fn count(
    db: &mut impl Exec,
    fields: &FieldSet,
    q: &ListQuery<'_>,
) -> Result<(i64, i64), ListError> {
    let (known, anonymous) = super::contacts::counts(db).await?;
    let mentions_anonymous = q.search.is_some_and(Expr::mentions_anonymous);
    let base = if mentions_anonymous {
        known + anonymous
    } else {
        known
    };
    if q.wheres.is_empty() {
        match q.search {
            None => return Ok((known, base)),
            Some(Expr::Cond(Cond::Anonymous)) => return Ok((anonymous, base)),
            // The owner index holds the owned known contacts only.
            Some(Expr::Cond(Cond::Unowned)) => {
                let owned = db
                    .fetch_i64(
                        "SELECT COUNT(*) FROM contacts WHERE date_identified IS NOT NULL AND owner_id IS NOT NULL",
                        vec![],
                    )
                    .await?
                    .unwrap_or(0);
                return Ok((known - owned, base));
            }
            // The trigram table holds exactly the known contacts.
            Some(Expr::Cond(Cond::Text(Match::Contains(v))))
                if db.backend() == Backend::Sqlite && v.chars().count() >= 3 =>
            {
                let phrase = format!("\"{}\"", fold(v).replace('"', "\"\""));
                let pattern = format!("%{}%", like_escape_all(&fold(v)));
                let sql = format!(
                    "SELECT COUNT(*) FROM ({})",
                    super::free_text::matching_ids("$1", &["$2".to_owned()])
                );
                let n = db
                    .fetch_i64(&sql, vec![Value::Text(phrase), Value::Text(pattern)])
                    .await?
                    .unwrap_or(0);
                return Ok((n, base));
            }
            Some(Expr::Cond(Cond::Tag(m))) => {
                let mut c = Compiler {
                    backend: db.backend(),
                    fields,
                    me: q.me,
                    p: Params::default(),
                    anonymous: false,
                    probe: false,
                };
                let t = c.text_match(&search_expr(db.backend(), "t.tag", Kind::Text), m);
                let sql = format!(
                    "SELECT COUNT(DISTINCT ct.contact_id) FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE {t} AND ct.known = 1"
                );
                return Ok((db.fetch_i64(&sql, c.p.values).await?.unwrap_or(0), base));
            }
            _ => {}
        }
    }
    let (cond, params) =
        where_clause(db.backend(), fields, q, false).map_err(ListError::BadQuery)?;
    let rows = db
        .fetch_all_planned(
            &format!("SELECT COUNT(*) FROM contacts c WHERE {cond}"),
            params.values,
        )
        .await?;
    let total = rows.first().and_then(|r| r.at(0).as_i64()).unwrap_or(0);
    Ok((total, base))
}

/// Rows a walk down the last-active index is expected to read before filling the page;
/// beyond this, collecting the matches and sorting them is cheaper.
const MAX_WALK: i64 = 20_000;

/// Counts and fetches one page of contacts.
pub async fn list(
    db: &mut impl Exec,
    fields: &FieldSet,
    q: &ListQuery<'_>,
) -> Result<(Vec<Contact>, i64), ListError> {
    let backend = db.backend();
    let resolved = match q.search {
        Some(e) => Some(resolve(db, e).await?),
        None => None,
    };
    let q = &ListQuery {
        search: resolved.as_ref(),
        wheres: q.wheres,
        order_by: q.order_by,
        dir: q.dir,
        offset: q.offset,
        limit: q.limit,
        me: q.me,
    };
    let (total, base) = count(db, fields, q).await?;
    let order = order_clause(fields, q).map_err(ListError::BadQuery)?;
    let wanted = q.offset + q.limit.unwrap_or(total);
    let mut contacts = Vec::new();
    if total > q.offset && wanted > 0 {
        // Dense matches on the default order: walk the last-active index and stop after a
        // page (SQLite needs telling; PostgreSQL's planner sees it from its statistics).
        let walk = q
            .order_by
            .is_none_or(|o| matches!(o, "last_active" | "lastActive"))
            && wanted.saturating_mul(base) / total.max(1) <= MAX_WALK;
        let (cond, mut p) = where_clause(backend, fields, q, walk).map_err(ListError::BadQuery)?;
        // Known and anonymous contacts have a last-active index each; a search that may
        // match both is sorted.
        let from = match (backend, walk) {
            (Backend::Sqlite, true) if !q.search.is_some_and(Expr::mentions_anonymous) => {
                "contacts c INDEXED BY contacts_known_active"
            }
            (Backend::Sqlite, true) if q.search.is_some_and(Expr::only_anonymous) => {
                "contacts c INDEXED BY contacts_anonymous_active"
            }
            _ => "contacts c",
        };
        let mut sql = format!(
            "SELECT {} FROM {from} WHERE {cond} ORDER BY {order}",
            super::contacts::select_list(fields, "c.")
        );
        if let Some(limit) = q.limit {
            sql.push_str(&format!(" LIMIT {}", p.push(limit)));
            sql.push_str(&format!(" OFFSET {}", p.push(q.offset)));
        } else if q.offset > 0 {
            let no_limit = match backend {
                Backend::Sqlite => " LIMIT -1",
                Backend::Postgres => " LIMIT ALL",
            };
            sql.push_str(no_limit);
            sql.push_str(&format!(" OFFSET {}", p.push(q.offset)));
        }
        let rows = db.fetch_all_planned(&sql, p.values).await?;
        contacts = rows
            .iter()
            .map(|r| super::contacts::from_row(fields, r))
            .collect();
    }
    let ids: Vec<i64> = contacts.iter().map(|c: &Contact| c.id).collect();
    let mut tags = super::contacts::tags_of(db, &ids).await?;
    for c in &mut contacts {
        c.tags = tags.remove(&c.id).unwrap_or_default();
    }
    Ok((contacts, total))
}

/// Only the ids matching a query (for batch actions and exports), in list order.
pub async fn ids(
    db: &mut impl Exec,
    fields: &FieldSet,
    q: &ListQuery<'_>,
) -> Result<Vec<i64>, ListError> {
    let backend = db.backend();
    let resolved = match q.search {
        Some(e) => Some(resolve(db, e).await?),
        None => None,
    };
    let q = &ListQuery {
        search: resolved.as_ref(),
        wheres: q.wheres,
        order_by: q.order_by,
        dir: q.dir,
        offset: q.offset,
        limit: q.limit,
        me: q.me,
    };
    let (cond, mut p) = where_clause(backend, fields, q, false).map_err(ListError::BadQuery)?;
    let order = order_clause(fields, q).map_err(ListError::BadQuery)?;
    let mut sql = format!("SELECT c.id FROM contacts c WHERE {cond} ORDER BY {order}");
    if let Some(limit) = q.limit {
        sql.push_str(&format!(
            " LIMIT {} OFFSET {}",
            p.push(limit),
            p.push(q.offset)
        ));
    }
    Ok(db
        .fetch_all(&sql, p.values)
        .await?
        .iter()
        .map(|r| r.i64("id"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::search::parse;

    fn sql(backend: Backend, q: &str) -> Result<String, String> {
        compiled(backend, q, false).map(|(s, _)| s)
    }

    /// The condition of a page of `q`, walking an ordered index or not.
    fn compiled(backend: Backend, q: &str, walk: bool) -> Result<(String, Params), String> {
        let fields = FieldSet::defaults_for_tests();
        let e = parse(q, &fields)?;
        let lq = ListQuery {
            search: e.as_ref(),
            wheres: &[],
            order_by: None,
            dir: Dir::Desc,
            offset: 0,
            limit: Some(30),
            me: Some(1),
        };
        where_clause(backend, &fields, &lq, walk)
    }

    #[test]
    fn hides_anonymous_unless_asked() {
        assert!(
            sql(Backend::Sqlite, "smith")
                .unwrap()
                .contains("date_identified IS NOT NULL")
        );
        assert!(
            !sql(Backend::Sqlite, "is:anonymous")
                .unwrap()
                .contains("date_identified IS NOT NULL")
        );
    }

    #[test]
    fn prefix_is_an_index_range_and_values_are_parameters() {
        for b in [Backend::Sqlite, Backend::Postgres] {
            let s = sql(b, "email:o'brien@").unwrap();
            assert!(s.contains(">= $1") && s.contains("< $2"), "{s}");
            assert!(
                !s.contains("brien"),
                "values must be bound, not inlined: {s}"
            );
        }
        assert!(
            sql(Backend::Postgres, "email:a")
                .unwrap()
                .contains("COLLATE \"C\"")
        );
    }

    #[test]
    fn free_text_uses_the_trigram_index() {
        assert!(
            sql(Backend::Sqlite, "smith")
                .unwrap()
                .contains("contacts_fts")
        );
        assert!(
            sql(Backend::Postgres, "smith")
                .unwrap()
                .contains("search_text LIKE")
        );
        assert!(
            sql(Backend::Sqlite, "email:%@example.org")
                .unwrap()
                .contains("email_rev")
        );
        assert!(
            sql(Backend::Sqlite, "email:%example%")
                .unwrap()
                .contains("contacts_fts")
        );
        // anonymous visitors are not in the trigram index
        assert!(
            !sql(Backend::Sqlite, "is:anonymous smith")
                .unwrap()
                .contains("contacts_fts")
        );
        // too short for trigrams: no prefilter
        assert!(!sql(Backend::Sqlite, "ab").unwrap().contains("contacts_fts"));
        // walking an ordered index, PostgreSQL tests each row instead
        let (walk, p) = compiled(Backend::Postgres, "smith", true).unwrap();
        assert!(walk.contains("strpos(c.search_text, $1) > 0"), "{walk}");
        assert!(!walk.contains("LIKE"), "{walk}");
        assert_eq!(p.values, vec![Value::Text("smith".into())]);
    }

    #[test]
    fn negation_is_null_safe() {
        assert!(
            sql(Backend::Sqlite, "!tag:vip")
                .unwrap()
                .contains("IS TRUE")
        );
    }

    #[test]
    fn where_filters() {
        let fields = FieldSet::defaults_for_tests();
        let w = |col: &str, expr: &str, val: WhereValue| WhereFilter {
            col: col.into(),
            expr: expr.into(),
            val,
            group: Vec::new(),
        };
        let group = |expr: &str, group: Vec<WhereFilter>| WhereFilter {
            col: String::new(),
            expr: expr.into(),
            val: WhereValue::None,
            group,
        };
        let ok = [
            w("email", "eq", WhereValue::One("a@b.co".into())),
            w("dateAdded", "gt", WhereValue::One("2024-01-01".into())),
            w("points", "in", WhereValue::One("1,2,3".into())),
            w("city", "isNull", WhereValue::None),
            w(
                "points",
                "between",
                WhereValue::Many(vec!["1".into(), "5".into()]),
            ),
        ];
        let accepted = |f: &WhereFilter| {
            let lq = ListQuery {
                search: None,
                wheres: std::slice::from_ref(f),
                order_by: None,
                dir: Dir::Desc,
                offset: 0,
                limit: None,
                me: None,
            };
            where_clause(Backend::Sqlite, &fields, &lq, false).is_ok()
        };
        for f in ok {
            assert!(accepted(&f), "{f:?}");
        }
        // Groups join their filters, nested as sent; one bad filter spoils the group.
        let either = group(
            "orX",
            vec![
                w("email", "eq", WhereValue::One("a@b.co".into())),
                group(
                    "andX",
                    vec![
                        w("city", "eq", WhereValue::One("Oslo".into())),
                        w("points", "gt", WhereValue::One("3".into())),
                    ],
                ),
            ],
        );
        let lq = ListQuery {
            search: None,
            wheres: std::slice::from_ref(&either),
            order_by: None,
            dir: Dir::Desc,
            offset: 0,
            limit: None,
            me: None,
        };
        let (sql, _) = where_clause(Backend::Sqlite, &fields, &lq, false).unwrap();
        assert!(sql.contains(" OR (") && sql.contains(" AND "), "{sql}");
        assert!(!accepted(&group(
            "andX",
            vec![w("nope", "eq", WhereValue::One("x".into()))]
        )));
        let bad = [
            w("nope", "eq", WhereValue::One("x".into())),
            w("email", "regex", WhereValue::One("x".into())),
            w("points", "eq", WhereValue::One("many".into())),
            w("points", "like", WhereValue::One("1".into())),
            w("dateAdded", "gt", WhereValue::One("someday".into())),
            w("points", "between", WhereValue::One("1".into())),
        ];
        for f in bad {
            assert!(!accepted(&f), "{f:?}");
        }
    }
}
