//! Exports of contacts to CSV or Excel (.xlsx): of a search (the grammar and `where`
//! filters of `GET /api/contacts`) or of selected ids.
//!
//! Rows are read in pages with keyset pagination over ids (`id > last ORDER BY id LIMIT n`)
//! and written as they come by a writer thread, so memory stays flat at any size; the
//! XLSX writer runs in rust_xlsxwriter's constant-memory mode and continues on a new
//! sheet past Excel's 1,048,576 rows. Values that a spreadsheet would run as a formula
//! are neutralised (`neutralize`).
//!
//! A requested export is a background job: it writes `<data-dir>/exports/…`, then emails
//! the requesting user a link (valid for `[export] link_ttl_hours`, for that user only)
//! and leaves a notification. `direct` writes a file for an immediate download instead.

mod lines;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};

use crate::contacts::fields::{FieldSet, Storage};
use crate::contacts::search;
use crate::error::{AppError, AppResult};
use crate::jobs::{self, Control, JobCtx, Outcome};
use crate::state::SharedState;
use crate::store::contact_search::{self, Dir, ListQuery, WhereFilter, WhereValue};
use crate::store::exports::{ExportRow, PAGE_SYSTEM_COLUMNS, Scope};
use crate::store::{self, Backend, Exec, Kind, Params, Row, Value};
use crate::time::{now_ms, sql_datetime};
use crate::users::User;

/// Rows read per page.
const PAGE: i64 = 2000;
/// Excel's row limit per sheet (the header included).
pub const XLSX_MAX_ROWS: u32 = 1_048_576;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "xlsx" | "excel" => Some(Format::Xlsx),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

pub fn dir(state: &SharedState) -> PathBuf {
    state.config.data_dir.join("exports")
}

// ---------------------------------------------------------------------------------------
// Formula injection.

/// Whether a spreadsheet could take this value for a formula: it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return (and is not simply a number), or it is such a
/// value already escaped with `'` (escaped again, so the escaping can be undone exactly).
pub fn needs_neutralizing(s: &str) -> bool {
    // A text an import would read as "clear the field".
    if crate::imports::clears(s) {
        return true;
    }
    let Some(first) = s.chars().next() else {
        return false;
    };
    match first {
        '=' | '+' | '-' | '@' | '\t' | '\r' => !is_plain_number(s),
        '\'' => needs_neutralizing(&s[1..]),
        _ => false,
    }
}

/// A contact's tags in one cell: joined by `|`, with `|`, `,` and `\` inside a tag and a
/// tag's leading `-` (which an import reads as "take off") escaped by `\`, so an import
/// splits the cell back into the same tags.
pub fn join_tags<S: AsRef<str>>(tags: &[S]) -> String {
    let mut out = String::new();
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for (at, c) in tag.as_ref().chars().enumerate() {
            if matches!(c, '|' | ',' | '\\') || (at == 0 && c == '-') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

fn is_plain_number(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    !body.is_empty()
        && body.chars().all(|c| c.is_ascii_digit() || c == '.')
        && body.chars().filter(|c| *c == '.').count() <= 1
        && body.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// The value as written to a CSV or XLSX cell: prefixed with `'` when it could run as a
/// formula. Imports undo it (`imports` strips one `'` before such a value).
pub fn neutralize(s: &str) -> std::borrow::Cow<'_, str> {
    if needs_neutralizing(s) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Characters (UTF-16 units) an Excel cell holds at most.
const XLSX_MAX_CELL_UNITS: usize = 32_767;

/// A text as an XLSX cell holds it: a longer one (a long textarea, many tags) is cut to
/// Excel's limit and ends in "…", rather than failing the whole export (the CSV export
/// carries every value whole).
fn xlsx_cell_text(s: &str) -> std::borrow::Cow<'_, str> {
    // Each char is 1 or 2 UTF-16 units, so a text of at most this many bytes fits.
    if s.len() <= XLSX_MAX_CELL_UNITS || s.encode_utf16().count() <= XLSX_MAX_CELL_UNITS {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut units = 0;
    let end = s
        .char_indices()
        .find(|(_, c)| {
            units += c.len_utf16();
            units >= XLSX_MAX_CELL_UNITS // one unit stays for the "…"
        })
        .map_or(s.len(), |(i, _)| i);
    std::borrow::Cow::Owned(format!("{}…", &s[..end]))
}

// ---------------------------------------------------------------------------------------
// What to export.

/// A search (grammar + `where` filters) or a list of ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub search: String,
    pub wheres: Vec<WhereFilter>,
    pub ids: Option<Vec<i64>>,
}

impl Query {
    /// From `search`, `where` and `ids` (a list or "1,2,3") of a JSON body or query string
    /// (beside `format`). Any other key is refused: a misspelt `search` must not export
    /// every contact.
    pub fn from_map(m: &Map<String, Json>) -> AppResult<Query> {
        const KEYS: [&str; 4] = ["format", "search", "where", "ids"];
        if let Some(k) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(AppError::bad_request(format!(
                "unknown parameter '{k}': an export takes format, search, where and ids"
            )));
        }
        let one_id = |x: &Json| {
            x.as_i64()
                .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| AppError::bad_request("ids must be contact ids like 1,2,3"))
        };
        let search = match m.get("search") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(_) => return Err(AppError::bad_request("search must be a string")),
        };
        let wheres = search::where_filters(m.get("where").unwrap_or(&Json::Null))?;
        let ids = match m.get("ids") {
            None | Some(Json::Null) => None,
            // An empty string is an empty selection, as `[]` is (refused below), never
            // "no selection": that would export every contact.
            Some(Json::String(s)) if s.trim().is_empty() => Some(Vec::new()),
            Some(Json::String(s)) => Some(
                s.split(',')
                    .map(|x| one_id(&Json::String(x.to_owned())))
                    .collect::<AppResult<Vec<_>>>()?,
            ),
            Some(Json::Array(a)) => Some(a.iter().map(one_id).collect::<AppResult<Vec<_>>>()?),
            Some(Json::Object(o)) => Some(o.values().map(one_id).collect::<AppResult<Vec<_>>>()?),
            Some(_) => return Err(AppError::bad_request("ids must be a list of contact ids")),
        };
        if let Some(ids) = &ids {
            if ids.is_empty() {
                return Err(AppError::bad_request(
                    "ids is empty: select contacts to export",
                ));
            }
            if ids.len() > 1_000_000 {
                return Err(AppError::bad_request(
                    "at most 1,000,000 ids; export a search instead",
                ));
            }
        }
        Ok(Query {
            search,
            wheres,
            ids,
        })
    }

    pub fn to_json(&self) -> Json {
        json!({ "search": self.search, "where": where_json(&self.wheres), "ids": self.ids })
    }
}

/// `where` filters as `search::where_filters` reads them back.
fn where_json(wheres: &[WhereFilter]) -> Json {
    let one = |w: &WhereFilter| {
        let val = match (&w.val, w.group.is_empty()) {
            (_, false) => where_json(&w.group),
            (WhereValue::None, true) => Json::Null,
            (WhereValue::One(s), true) => json!(s),
            (WhereValue::Many(v), true) => json!(v),
        };
        json!({ "col": w.col, "expr": w.expr, "val": val })
    };
    Json::Array(wheres.iter().map(one).collect())
}

/// The SQL condition of a query, or a 400 saying what is wrong with it.
async fn compile(
    db: &mut impl store::Exec,
    fields: &FieldSet,
    q: &Query,
    me: i64,
) -> AppResult<(String, Params)> {
    let expr = search::parse(&q.search, fields)
        .map_err(|m| AppError::bad_request(format!("invalid search: {m}")))?;
    let lq = ListQuery {
        search: expr.as_ref(),
        wheres: &q.wheres,
        order_by: None,
        dir: Dir::Asc,
        offset: 0,
        limit: None,
        me: Some(me),
    };
    match contact_search::condition(db, fields, &lq).await {
        Ok(c) => Ok(c),
        Err(contact_search::ListError::BadQuery(m)) => Err(AppError::bad_request(m)),
        Err(contact_search::ListError::Db(e)) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Rows.

/// A cell of the output.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Empty,
    Int(i64),
    Float(f64),
    Text(String),
    /// Milliseconds since 1970 (`date_added`, `last_active` …).
    Date(i64),
}

impl Cell {
    fn as_ref(&self) -> CellRef<'_> {
        match self {
            Cell::Empty => CellRef::Empty,
            Cell::Int(i) => CellRef::Int(*i),
            Cell::Float(f) => CellRef::Float(*f),
            Cell::Text(s) => CellRef::Text(s),
            Cell::Date(ms) => CellRef::Date(*ms),
        }
    }
}

/// A cell as the writer takes it: borrowed text, and dates as milliseconds (formatted
/// as `fast_datetime` does, then written like text).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum CellRef<'a> {
    Empty,
    Int(i64),
    Float(f64),
    Text(&'a str),
    Date(i64),
}

/// Column headers: id, every field alias, tags, owner, stage, the dates.
pub fn headers(fields: &FieldSet) -> Vec<String> {
    let mut h = vec!["id".to_owned()];
    h.extend(fields.iter().map(|f| f.alias.clone()));
    h.extend(
        [
            "tags",
            "owner",
            "stage",
            "date_added",
            "date_modified",
            "date_identified",
        ]
        .map(str::to_owned),
    );
    h
}

/// Milliseconds since 1970 as Excel's date serial (days since 1899-12-30, the fraction
/// the time of day), for the dates Excel's 1900 system holds past its leap-year bug.
fn excel_serial(ms: i64) -> Option<f64> {
    const DAY_MS: f64 = 86_400_000.0;
    const EPOCH_SERIAL: f64 = 25_569.0; // 1970-01-01
    const FIRST_MS: i64 = -2_203_891_200_000; // 1900-03-01
    const END_MS: i64 = 253_402_300_800_000; // 10000-01-01
    (FIRST_MS..END_MS)
        .contains(&ms)
        .then(|| ms as f64 / DAY_MS + EPOCH_SERIAL)
}

/// The cell of a field's value.
fn field_cell(f: &crate::contacts::fields::FieldDef, v: &Value) -> Cell {
    match (f.storage(), v) {
        (_, Value::Null(_)) => Cell::Empty,
        (Storage::Timestamp, v) => date_cell(v),
        (Storage::Points, v) => Cell::Int(v.as_i64().unwrap_or(0)),
        (Storage::Column, Value::Int(i)) if f.kind() == Kind::Float => Cell::Float(*i as f64),
        (Storage::Column, Value::Int(i)) => Cell::Int(*i),
        (Storage::Column, Value::Float(x)) => Cell::Float(*x),
        (Storage::Column, Value::Text(s)) if f.kind() == Kind::Float => {
            s.parse().map_or(Cell::Text(s.clone()), Cell::Float)
        }
        (Storage::Column, Value::Text(s)) => Cell::Text(s.clone()),
    }
}

fn date_cell(v: &Value) -> Cell {
    v.as_i64().map_or(Cell::Empty, Cell::Date)
}

/// `2024-05-01 12:00:00` as `time::sql_datetime` writes it, without parsing a format
/// string for each of millions of cells.
pub fn fast_datetime(ms: i64) -> String {
    let mut out = String::with_capacity(19);
    push_datetime(&mut out, ms);
    out
}

/// Appends `fast_datetime(ms)` to `out`: the civil date of the day number (Howard
/// Hinnant's `civil_from_days`), digits written directly; years outside 0..=9999 (and
/// dates chrono cannot represent) go through `sql_datetime`.
fn push_datetime(out: &mut String, ms: i64) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Days from 0000-03-01, in 400-year eras of 146,097 days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        out.push_str(&sql_datetime(ms));
        return;
    }
    let mut b = *b"0000-00-00 00:00:00";
    let two = |b: &mut [u8; 19], at: usize, v: i64| {
        b[at] = b'0' + (v / 10) as u8;
        b[at + 1] = b'0' + (v % 10) as u8;
    };
    two(&mut b, 0, year / 100);
    two(&mut b, 2, year % 100);
    two(&mut b, 5, month);
    two(&mut b, 8, day);
    two(&mut b, 11, tod / 3600);
    two(&mut b, 14, tod / 60 % 60);
    two(&mut b, 17, tod % 60);
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

/// A page of rows for the writer.
enum Page {
    Cells(Vec<Vec<Cell>>),
    Lines(lines::LinePage),
}

impl Page {
    fn is_empty(&self) -> bool {
        match self {
            Page::Cells(rows) => rows.is_empty(),
            Page::Lines(p) => p.len() == 0,
        }
    }
}

/// What an export reads: the compiled search and filters, or the selected ids (those
/// of them that match the search and filters, when the query has any).
struct Selection {
    cond: String,
    params: Params,
    /// Sorted and without duplicates.
    ids: Option<Vec<i64>>,
    /// Whether the query has a search or filters of its own (an empty search would
    /// leave out the anonymous contacts a selection may hold).
    filtered: bool,
}

impl Selection {
    /// The contacts of a page: the chunk of selected ids, or the matches after `after`.
    fn scope(
        &self,
        chunk: &Option<std::ops::Range<usize>>,
        after: i64,
        limit: Option<i64>,
        until: Option<i64>,
    ) -> Scope<'_> {
        match (chunk, &self.ids) {
            (Some(range), Some(ids)) => Scope::Ids {
                ids: &ids[range.clone()],
                filter: self.filtered.then_some((self.cond.as_str(), &self.params)),
            },
            _ => Scope::After {
                condition: &self.cond,
                params: &self.params,
                after,
                limit,
                until,
            },
        }
    }
}

/// Reads the contacts of a query page by page.
struct Reader {
    /// One connection for the whole scan (with a bounded cache: see `scan_begin`).
    db: store::Conn,
    fields: Arc<FieldSet>,
    selection: Selection,
    after: i64,
    next_id: usize,
    layout: Arc<lines::Layout>,
    /// SQLite: pages are read as lines (`lines.rs`).
    fast: bool,
    /// The columns of `fields` stay until the export ends (a field's deletion waits).
    _columns: tokio::sync::OwnedRwLockReadGuard<()>,
}

impl Reader {
    /// `lines`: read pages as lines where the database can (SQLite).
    async fn new(state: &SharedState, q: &Query, me: i64, lines: bool) -> AppResult<Reader> {
        let columns = state.fields.reading_columns().await;
        let mut db = state.store.read().await?;
        let fields = state.fields(&mut db).await?;
        let (cond, params) = compile(&mut db, &fields, q, me).await?;
        let (stages, users) = store::exports::names(&mut db).await?;
        let ids = q.ids.clone().map(|mut v| {
            v.sort_unstable();
            v.dedup();
            v
        });
        // A scan reads the whole table: through mmap it would all be mapped into this
        // process, and a large page cache would fill; both are bounded for the scan.
        store::exports::scan_begin(&mut db).await?;
        let fast = lines && db.backend() == Backend::Sqlite;
        Ok(Reader {
            db,
            layout: Arc::new(lines::Layout::new(&fields, users, stages)),
            fields,
            selection: Selection {
                cond,
                params,
                ids,
                filtered: !q.search.trim().is_empty() || !q.wheres.is_empty(),
            },
            after: 0,
            next_id: 0,
            fast,
            _columns: columns,
        })
    }

    /// Gives the connection its usual settings back (it returns to the pool on drop).
    async fn finish(mut self) {
        let _ = store::exports::scan_end(&mut self.db).await;
    }

    /// The next page; `None` when done.
    async fn next_page(&mut self) -> AppResult<Option<Page>> {
        // The chunk of ids this page reads, if exporting ids.
        let chunk = match &self.selection.ids {
            Some(ids) => {
                if self.next_id >= ids.len() {
                    return Ok(None);
                }
                let end = (self.next_id + PAGE as usize).min(ids.len());
                let range = self.next_id..end;
                self.next_id = end;
                Some(range)
            }
            None => None,
        };
        let mut page = None;
        if self.fast {
            page = self.lines_page(chunk.clone()).await?.map(Page::Lines);
        }
        let page = match page {
            Some(p) => p,
            None => Page::Cells(self.cells_page(chunk).await?),
        };
        if page.is_empty() && self.selection.ids.is_none() {
            return Ok(None);
        }
        // (A chunk of ids that no longer exist is an empty page: the next may have some.)
        Ok(Some(page))
    }

    /// A page read as lines (SQLite), with its tags and numeric fields; `None` when the
    /// text cannot be read with certainty (then the page is read again as cells).
    async fn lines_page(
        &mut self,
        chunk: Option<std::ops::Range<usize>>,
    ) -> AppResult<Option<lines::LinePage>> {
        let page_scope = self.selection.scope(&chunk, self.after, Some(PAGE), None);
        let read = store::exports::lines(&mut self.db, &self.fields, &page_scope).await;
        let read = match read {
            Ok(r) => r,
            // Such as a page too long for one SQLite string: the usual way can read it.
            Err(e) => {
                tracing::debug!(error = %e, "export page read as cells");
                return Ok(None);
            }
        };
        let after = if chunk.is_some() {
            i64::MIN
        } else {
            self.after
        };
        let numbers = read.numbers;
        let Some(mut page) =
            lines::LinePage::split(&self.layout, read.text, read.rows as usize, after)
        else {
            return Ok(None);
        };
        let (Some(&first), Some(&last)) = (page.ids.first(), page.ids.last()) else {
            return Ok(Some(page));
        };
        if numbers {
            let numbers_scope = self.selection.scope(&chunk, self.after, None, Some(last));
            let numeric: Vec<_> = self
                .fields
                .iter()
                .filter(|f| store::exports::is_numeric_column(f))
                .collect();
            for r in store::exports::numbers(&mut self.db, &self.fields, &numbers_scope).await? {
                let cells = numeric
                    .iter()
                    .enumerate()
                    .map(|(i, f)| field_cell(f, r.at(1 + i)))
                    .collect();
                page.numbers.insert(r.at(0).as_i64().unwrap_or(0), cells);
            }
        }
        // Dense ids (a plain export): one range of the tags' key. Sparse ones (a
        // search, selected ids): a lookup per contact.
        let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
        if (last - first) as u64 <= 4 * page.ids.len() as u64 {
            for r in store::exports::tags_between(&mut self.db, first, last).await? {
                tags.entry(r.i64("contact_id"))
                    .or_default()
                    .push(r.text("tag"));
            }
        } else {
            tags = store::contacts::tags_of(&mut self.db, &page.ids).await?;
        }
        page.tags = tags
            .into_iter()
            .map(|(id, t)| (id, join_tags(&t)))
            .collect();
        if chunk.is_none() {
            self.after = last;
        }
        Ok(Some(page))
    }

    /// A page read as cells (PostgreSQL, or a page `lines_page` declined).
    async fn cells_page(
        &mut self,
        chunk: Option<std::ops::Range<usize>>,
    ) -> AppResult<Vec<Vec<Cell>>> {
        let page_scope = self.selection.scope(&chunk, self.after, Some(PAGE), None);
        let db = &mut self.db;
        let rows = store::exports::page(db, &self.fields, &page_scope).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.at(0).as_i64().unwrap_or(0)).collect();
        if chunk.is_none() {
            self.after = *ids.last().unwrap_or(&self.after);
        }
        let mut tags = store::contacts::tags_of(db, &ids).await?;
        Ok(rows
            .iter()
            .map(|r| {
                self.cells(
                    r,
                    tags.remove(&r.at(0).as_i64().unwrap_or(0))
                        .unwrap_or_default(),
                )
            })
            .collect())
    }

    fn cells(&self, r: &Row, tags: Vec<String>) -> Vec<Cell> {
        let n = PAGE_SYSTEM_COLUMNS.len();
        let mut out = Vec::with_capacity(self.fields.len() + 7);
        out.push(Cell::Int(r.at(0).as_i64().unwrap_or(0)));
        for (i, f) in self.fields.iter().enumerate() {
            out.push(field_cell(f, r.at(n + i)));
        }
        out.push(if tags.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(join_tags(&tags))
        });
        let name = |map: &HashMap<i64, String>, v: &Value| {
            lines::Layout::name(map, v.as_i64()).map_or(Cell::Empty, |s| Cell::Text(s.to_owned()))
        };
        out.push(name(&self.layout.users, r.at(4)));
        out.push(name(&self.layout.stages, r.at(5)));
        out.push(date_cell(r.at(1)));
        out.push(date_cell(r.at(2)));
        out.push(date_cell(r.at(3)));
        out
    }
}

// ---------------------------------------------------------------------------------------
// Writers.

fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The text of a cell as CSV shows it (neutralised).
pub fn cell_text(c: &Cell) -> std::borrow::Cow<'_, str> {
    match c {
        Cell::Empty => "".into(),
        Cell::Int(i) => i.to_string().into(),
        Cell::Float(f) => float_text(*f).into(),
        Cell::Text(s) => neutralize(s),
        Cell::Date(ms) => fast_datetime(*ms).into(),
    }
}

/// Writes one CSV field (RFC 4180 quoting).
pub fn write_csv_field(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    if memchr::memchr3(b',', b'"', b'\n', s.as_bytes()).is_some() || s.contains('\r') {
        out.write_all(b"\"")?;
        out.write_all(s.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(s.as_bytes())
    }
}

pub fn write_csv_row<'a>(
    out: &mut impl Write,
    cells: impl IntoIterator<Item = std::borrow::Cow<'a, str>>,
) -> std::io::Result<()> {
    for (i, c) in cells.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_csv_field(out, &c)?;
    }
    out.write_all(b"\r\n")
}

/// Where rows go.
enum Sink {
    Csv(std::io::BufWriter<std::fs::File>),
    Xlsx {
        book: Box<rust_xlsxwriter::Workbook>,
        path: PathBuf,
        sheet: usize,
        row: u32,
        /// Rows a sheet holds, its header included (`XLSX_MAX_ROWS`; smaller in tests).
        max_rows: u32,
        headers: Vec<String>,
        bold: Box<rust_xlsxwriter::Format>,
        /// `yyyy-mm-dd hh:mm:ss`, for the dates.
        date: Box<rust_xlsxwriter::Format>,
    },
}

fn xlsx_err(e: rust_xlsxwriter::XlsxError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Sink {
    fn open(format: Format, path: &std::path::Path, headers: &[String]) -> std::io::Result<Sink> {
        Sink::open_with(format, path, headers, XLSX_MAX_ROWS)
    }

    fn open_with(
        format: Format,
        path: &std::path::Path,
        headers: &[String],
        max_rows: u32,
    ) -> std::io::Result<Sink> {
        match format {
            Format::Csv => {
                let mut w =
                    std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
                // A byte order mark: Excel then reads the file as UTF-8.
                w.write_all(b"\xEF\xBB\xBF")?;
                write_csv_row(
                    &mut w,
                    headers
                        .iter()
                        .map(|h| std::borrow::Cow::Borrowed(h.as_str())),
                )?;
                Ok(Sink::Csv(w))
            }
            Format::Xlsx => {
                let mut book = rust_xlsxwriter::Workbook::new();
                // Deflate at level 3 (Excel's own) instead of 6: compressing the sheets
                // was most of an export's time (1M rows: 11.3 s → 7.2 s; 80 → 90 MB).
                book.set_zip_compression_level(3);
                if let Some(dir) = path.parent() {
                    book.set_tempdir(dir).map_err(xlsx_err)?;
                }
                let mut sink = Sink::Xlsx {
                    book: Box::new(book),
                    path: path.to_path_buf(),
                    sheet: usize::MAX,
                    row: 0,
                    max_rows,
                    headers: headers.to_vec(),
                    bold: Box::new(rust_xlsxwriter::Format::new().set_bold()),
                    date: Box::new(
                        rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
                    ),
                };
                sink.new_sheet()?;
                Ok(sink)
            }
        }
    }

    fn new_sheet(&mut self) -> std::io::Result<()> {
        let Sink::Xlsx {
            book,
            sheet,
            row,
            headers,
            bold,
            ..
        } = self
        else {
            return Ok(());
        };
        *sheet = sheet.wrapping_add(1);
        let ws = book
            .add_worksheet_with_constant_memory()
            .map_err(xlsx_err)?;
        ws.set_name(format!("Contacts {}", *sheet + 1))
            .map_err(xlsx_err)?;
        for (i, h) in headers.iter().enumerate() {
            ws.write_string_with_format(0, i as u16, h, bold)
                .map_err(xlsx_err)?;
        }
        *row = 1;
        Ok(())
    }

    /// Writes a row; `date` is scratch space for formatting dates.
    fn row(&mut self, cells: &[CellRef<'_>], date: &mut String) -> std::io::Result<()> {
        if let Sink::Xlsx { row, max_rows, .. } = self
            && *row >= *max_rows
        {
            self.new_sheet()?;
        }
        match self {
            Sink::Csv(w) => {
                for (i, c) in cells.iter().enumerate() {
                    if i > 0 {
                        w.write_all(b",")?;
                    }
                    match *c {
                        CellRef::Empty => {}
                        CellRef::Int(v) => write!(w, "{v}")?,
                        CellRef::Float(f) => w.write_all(float_text(f).as_bytes())?,
                        CellRef::Text(s) => write_csv_field(w, &neutralize(s))?,
                        CellRef::Date(ms) => {
                            date.clear();
                            push_datetime(date, ms);
                            write_csv_field(w, &neutralize(date))?;
                        }
                    }
                }
                w.write_all(b"\r\n")
            }
            Sink::Xlsx {
                book,
                sheet,
                row,
                date: date_format,
                ..
            } => {
                let ws = book.worksheet_from_index(*sheet).map_err(xlsx_err)?;
                for (i, c) in cells.iter().enumerate() {
                    let col = i as u16;
                    match *c {
                        CellRef::Empty => {}
                        CellRef::Int(v) => {
                            ws.write_number(*row, col, v as f64).map_err(xlsx_err)?;
                        }
                        CellRef::Float(v) => {
                            // PostgreSQL keeps -0 where SQLite stores 0: one cell for both.
                            let v = if v == 0.0 { 0.0 } else { v };
                            ws.write_number(*row, col, v).map_err(xlsx_err)?;
                        }
                        CellRef::Text(s) => {
                            ws.write_string(*row, col, xlsx_cell_text(&neutralize(s)))
                                .map_err(xlsx_err)?;
                        }
                        // A date Excel can hold is a date cell (filters and sums work on
                        // it); before 1900-03-01 or after 9999 it stays text.
                        CellRef::Date(ms) => match excel_serial(ms) {
                            Some(serial) => {
                                ws.write_number_with_format(*row, col, serial, date_format)
                                    .map_err(xlsx_err)?;
                            }
                            None => {
                                date.clear();
                                push_datetime(date, ms);
                                ws.write_string(*row, col, neutralize(date))
                                    .map_err(xlsx_err)?;
                            }
                        },
                    }
                }
                *row += 1;
                Ok(())
            }
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Csv(mut w) => {
                w.flush()?;
                w.get_ref().sync_all()
            }
            Sink::Xlsx { mut book, path, .. } => book.save(&path).map_err(xlsx_err),
        }
    }
}

/// Writes the export of `q` to `path`; returns the number of rows. `stop` is checked
/// between pages (a shutdown): `Ok(None)` then, and the partial file is removed.
async fn write_file(
    state: &SharedState,
    format: Format,
    q: &Query,
    me: i64,
    path: &std::path::Path,
    stop: impl Fn() -> bool,
    lines: bool,
) -> AppResult<Option<u64>> {
    let mut reader = Reader::new(state, q, me, lines).await?;
    let headers = headers(&reader.fields);
    let layout = reader.layout.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Page>(2);
    let path_buf = path.to_path_buf();
    // `complete`: every page was sent. When the pages stop without it (an error, a stop,
    // or this future dropped because the client of a direct download went away), the
    // writer removes its file instead of finishing it. `abandoned`: this future was
    // dropped while the writer worked (an XLSX is mostly compressed at the end); the
    // writer does not finish, or removes what it finished. (A background export dropped
    // between the writer's last check and its end leaves its file to that export's next
    // run, which removes it.)
    let complete = Arc::new(AtomicBool::new(false));
    let writer_complete = complete.clone();
    let writer_abandoned = Arc::new(AtomicBool::new(false));
    let abandoned = SetOnDrop(Some(writer_abandoned.clone()));
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut sink = Sink::open(format, &path_buf, &headers)?;
        let mut n = 0u64;
        let mut date = String::with_capacity(32);
        while let Some(page) = rx.blocking_recv() {
            match page {
                Page::Cells(rows) => {
                    let mut cells = Vec::new();
                    for row in &rows {
                        cells.clear();
                        cells.extend(row.iter().map(Cell::as_ref));
                        sink.row(&cells, &mut date)?;
                        n += 1;
                    }
                }
                Page::Lines(page) => {
                    let mut cells = Vec::new();
                    for r in 0..page.len() {
                        page.cells(&layout, r, &mut cells);
                        sink.row(&cells, &mut date)?;
                        n += 1;
                    }
                }
            }
        }
        if !writer_complete.load(Ordering::Acquire) || writer_abandoned.load(Ordering::Acquire) {
            drop(sink);
            let _ = std::fs::remove_file(&path_buf);
            return Ok(n);
        }
        sink.finish()?;
        if writer_abandoned.load(Ordering::Acquire) {
            let _ = std::fs::remove_file(&path_buf);
        }
        Ok(n)
    });
    let mut stopped = false;
    loop {
        if stop() {
            stopped = true;
            break;
        }
        match reader.next_page().await {
            Err(e) => {
                drop(tx);
                let _ = writer.await;
                reader.finish().await;
                let _ = tokio::fs::remove_file(path).await;
                return Err(e);
            }
            Ok(None) => {
                complete.store(true, Ordering::Release);
                break;
            }
            Ok(Some(page)) => {
                if tx.send(page).await.is_err() {
                    break; // the writer failed; its error is below
                }
            }
        }
    }
    drop(tx);
    reader.finish().await;
    let written = writer.await.map_err(|e| AppError::Internal(e.into()));
    abandoned.disarm(); // the writer is done: the caller owns the file now
    let written = written?;
    let n =
        written.map_err(|e| AppError::Internal(anyhow::anyhow!("writing the export file: {e}")))?;
    if stopped {
        return Ok(None); // the writer removed the file (the pages were not complete)
    }
    Ok(Some(n))
}

// ---------------------------------------------------------------------------------------
// Direct download.

/// Writes an export for an immediate download; returns the open file (already unlinked
/// from the directory, so nothing is left behind) and its size.
pub async fn direct(
    state: &SharedState,
    user: &User,
    format: Format,
    q: &Query,
) -> AppResult<(tokio::fs::File, u64)> {
    direct_with(state, user, format, q, true).await
}

/// For tests: `direct` with every page read as cells (PostgreSQL's way), to compare the
/// SQLite fast path with, byte for byte.
#[doc(hidden)]
pub async fn direct_as_cells(
    state: &SharedState,
    user: &User,
    format: Format,
    q: &Query,
) -> AppResult<(tokio::fs::File, u64)> {
    direct_with(state, user, format, q, false).await
}

async fn direct_with(
    state: &SharedState,
    user: &User,
    format: Format,
    q: &Query,
    lines: bool,
) -> AppResult<(tokio::fs::File, u64)> {
    let dir = dir(state);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let path = dir.join(format!(
        "direct-{:016x}.{}",
        rand::random::<u64>(),
        format.as_str()
    ));
    // The file is unlinked once open, and on every other way out, this future dropped
    // (the client went away) included.
    let _unlink = UnlinkOnDrop(path.clone());
    write_file(state, format, q, user.id, &path, || false, lines).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .len();
    Ok((file, size))
}

/// Sets its flag when dropped, unless disarmed first.
struct SetOnDrop(Option<Arc<AtomicBool>>);

impl SetOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::Release);
        }
    }
}

struct UnlinkOnDrop(PathBuf);

impl Drop for UnlinkOnDrop {
    // Blocking, on an async worker: one unlink is cheap; nothing heavier belongs here.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A file name for a download: `contacts-20240501-120000.csv`.
pub fn download_name(format: Format, at: i64) -> String {
    let stamp = sql_datetime(at).replace(['-', ':'], "").replace(' ', "-");
    format!("contacts-{stamp}.{}", format.as_str())
}

// ---------------------------------------------------------------------------------------
// Background exports.

/// Queues an export of `q` for `user`; checks the query first (a bad search is a 400 now,
/// not a failed job later).
pub async fn request(
    state: &SharedState,
    user: &User,
    format: Format,
    q: &Query,
) -> AppResult<ExportRow> {
    {
        let mut db = state.store.read().await?;
        let fields = state.fields(&mut db).await?;
        compile(&mut db, &fields, q, user.id).await?;
    }
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    let job_id = jobs::enqueue(&mut tx, jobs::EXPORT, Some(user.id)).await?;
    let id = store::exports::insert(&mut tx, job_id, user.id, format.as_str(), &q.to_json(), now)
        .await?;
    tx.commit().await?;
    state.jobs.wake();
    let mut db = state.store.read().await?;
    store::exports::get(&mut db, id)
        .await?
        .ok_or_else(AppError::not_found)
}

/// An export of this user (exports are private to their requester).
pub async fn get_for(
    state: &SharedState,
    user: &User,
    id: i64,
) -> AppResult<(ExportRow, Option<store::jobs::JobRow>)> {
    // One snapshot: the job is marked done after the export's last write committed.
    let mut db = state.store.snapshot().await?;
    let e = store::exports::get(&mut db, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    if e.created_by != user.id {
        return Err(AppError::not_found());
    }
    let job = match e.job_id {
        Some(j) => store::jobs::get(&mut db, j).await?,
        None => None,
    };
    Ok((e, job))
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The link in the email and the notification: the admin's download page, which a
/// browser follows with its session (`/api/exports/{id}/download` takes the same token
/// with Basic auth).
pub fn download_link(base: &str, id: i64, token: &str) -> String {
    format!(
        "{}/exports/{id}/download?token={token}",
        base.trim_end_matches('/')
    )
}

/// Checks a download: the export exists, belongs to `user`, the token is its token and
/// the link has not expired. Returns the export, its format and its file.
pub async fn authorize_download(
    state: &SharedState,
    user: &User,
    id: i64,
    token: &str,
) -> AppResult<(ExportRow, Format, PathBuf)> {
    use subtle::ConstantTimeEq;
    // An unknown id and a wrong token answer alike: nobody learns which exports exist.
    let not_valid = || AppError::Forbidden("This download link is not valid.".into());
    let mut db = state.store.snapshot().await?;
    let e = store::exports::get(&mut db, id)
        .await?
        .ok_or_else(not_valid)?;
    let token_ok = e
        .token_hash
        .as_ref()
        .is_some_and(|hash| bool::from(hash.as_bytes().ct_eq(token_hash(token).as_bytes())));
    if e.created_by != user.id {
        // Someone holding the real link learns whose it is; a guess learns nothing.
        return Err(if token_ok {
            AppError::Forbidden("This download link belongs to another user: log in as the user who requested the export.".into())
        } else {
            not_valid()
        });
    }
    if e.token_hash.is_none() {
        let job = match e.job_id {
            Some(j) => store::jobs::get(&mut db, j).await?,
            None => None,
        };
        return Err(
            match job.filter(|j| j.state == store::jobs::JobState::Failed) {
                Some(j) => AppError::Conflict(format!(
                    "This export failed ({}): export the contacts again.",
                    j.error.as_deref().unwrap_or("no reason recorded")
                )),
                None => AppError::NotFound("This export is not ready yet.".into()),
            },
        );
    }
    if !token_ok {
        return Err(not_valid());
    }
    let expired = e.expires_at.is_none_or(|t| t <= now_ms());
    let Some(name) = e.stored_name.clone().filter(|_| !expired) else {
        return Err(AppError::Forbidden(
            "This download link has expired: export the contacts again.".into(),
        ));
    };
    let path = dir(state).join(name);
    if !path.exists() {
        return Err(AppError::Forbidden(
            "This export's file is gone: export the contacts again.".into(),
        ));
    }
    let format = Format::parse(&e.format).unwrap_or(Format::Csv);
    Ok((e, format, path))
}

/// Tells an export's user that it failed for good (`jobs` calls this on every path that
/// ends in failure: an answer, errors after retries, a panic).
pub async fn notify_failure(state: &SharedState, job_id: i64, reason: &str) -> anyhow::Result<()> {
    let mut tx = state.store.begin().await?;
    let Some(export) = store::exports::by_job(&mut tx, job_id).await? else {
        return Ok(());
    };
    if store::users::by_id(&mut tx, export.created_by)
        .await?
        .is_none()
    {
        return Ok(());
    }
    store::exports::notify(
        &mut tx,
        export.created_by,
        "export",
        "Your export failed",
        &format!("The export could not be written: {reason}. Export the contacts again."),
        None,
        now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Writes the export's file, records its link, notifies its user and emails the link.
pub async fn run_job(state: &SharedState, ctx: &JobCtx) -> anyhow::Result<Outcome> {
    let export = {
        let mut db = state.store.read().await?;
        match store::exports::by_job(&mut db, ctx.job.id).await? {
            Some(e) => e,
            None => return Ok(Outcome::Failed("the export record is gone".into())),
        }
    };
    if export.finished_at.is_some() {
        // Written and linked by an earlier run that stopped before recording its end. If
        // it stopped while sending the email, whether it went is unknown, and the link's
        // token is gone with it (only its hash is stored): say so; the notification holds
        // the link.
        if export.email_status.as_deref() == Some(SENDING) {
            let mut tx = state.store.begin().await?;
            store::exports::set_email_status(
                &mut tx,
                export.id,
                "unknown: the server stopped while sending it (the link is in the notifications)",
            )
            .await?;
            tx.commit().await?;
        }
        return Ok(Outcome::Done);
    }
    let user = {
        let mut db = state.store.read().await?;
        match store::users::by_id(&mut db, export.created_by).await? {
            Some(u) => u,
            None => {
                return Ok(Outcome::Failed(
                    "the user who asked for this export is gone".into(),
                ));
            }
        }
    };
    let format = Format::parse(&export.format).unwrap_or(Format::Csv);
    let query = match export.query.as_object().map(Query::from_map) {
        Some(Ok(q)) => q,
        _ => return Ok(Outcome::Failed("the export's query cannot be read".into())),
    };
    let dir = dir(state);
    tokio::fs::create_dir_all(&dir).await?;
    // A run that died (kill -9, power loss) left its file unrecorded: the name is
    // recorded only with a finished file.
    let prefix = format!("{}-", export.id);
    remove_files(&dir, |name| name.starts_with(&prefix), None).await;
    let stored_name = format!(
        "{}-{:016x}.{}",
        export.id,
        rand::random::<u64>(),
        format.as_str()
    );
    let path = dir.join(&stored_name);
    let rows = match write_file(
        state,
        format,
        &query,
        user.id,
        &path,
        || ctx.stopping() || ctx.lost(),
        true,
    )
    .await
    {
        Ok(Some(n)) => n,
        Ok(None) if ctx.lost() => return Ok(Outcome::LeaseLost),
        Ok(None) => return Ok(Outcome::Interrupted),
        Err(AppError::BadRequest(m)) => return Ok(Outcome::Failed(m)),
        Err(AppError::Internal(e)) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        Err(e) => return Ok(Outcome::Failed(e.to_string())),
    };
    let size = tokio::fs::metadata(&path).await?.len();
    let token: String = {
        use base64::Engine;
        let bytes: [u8; 32] = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let now = now_ms();
    // At most ten years (checked when the configuration is read): no overflow.
    let ttl_ms = (state.config.file.export.link_ttl_hours * 3600 * 1000) as i64;
    let expires = now + ttl_ms;
    let link = download_link(&state.jobs.public_url(&state.config), export.id, &token);
    let until = sql_datetime(expires);
    let what = if rows == 1 {
        "1 contact".to_owned()
    } else {
        format!("{rows} contacts")
    };
    let text = format!(
        "Hello {},\n\nyour export of {what} ({}) is ready. Download it here while logged in as {}:\n\n{link}\n\nThe link works until {until} UTC.\n\n— Magpie\n",
        user.full_name(),
        format.as_str().to_uppercase(),
        user.username,
    );
    let email_to = Some(user.email.trim()).filter(|e| !e.is_empty());
    // The file and its link are recorded first, so the link works the moment the email
    // arrives; the email's fate is recorded after.
    let mut tx = state.store.begin().await?;
    if ctx.checkpoint(&mut tx).await? == Control::LeaseLost {
        drop(tx);
        let _ = tokio::fs::remove_file(&path).await;
        return Ok(Outcome::LeaseLost);
    }
    store::exports::finish(
        &mut tx,
        export.id,
        &store::exports::Finished {
            stored_name: &stored_name,
            rows: rows as i64,
            size_bytes: size as i64,
            token_hash: &token_hash(&token),
            expires_at: expires,
            email_to,
            email_status: if email_to.is_some() {
                SENDING
            } else {
                "not sent: the user has no email address (the link is in the notifications)"
            },
        },
        now,
    )
    .await?;
    store::exports::notify(
        &mut tx,
        user.id,
        "export",
        "Your export is ready",
        &format!(
            "{what} exported to {}; the link works until {until} UTC.",
            format.as_str().to_uppercase()
        ),
        Some(&link),
        now,
    )
    .await?;
    tx.commit().await?;
    if let Some(to) = email_to {
        let status = match crate::mail::send(
            &state.config,
            to,
            "Your Magpie export is ready",
            &text,
        )
        .await
        {
            Ok(d) => d.describe(),
            Err(e) => {
                tracing::warn!(
                    export = export.id,
                    error = format!("{e:#}"),
                    "export email not delivered"
                );
                format!("failed: {e:#}")
            }
        };
        let mut tx = state.store.begin().await?;
        store::exports::set_email_status(&mut tx, export.id, &status).await?;
        tx.commit().await?;
    }
    Ok(Outcome::Done)
}

/// An export's email status while its email is being sent.
const SENDING: &str = "sending";

/// Deletes the files of exports whose link expired.
pub async fn delete_expired_files(state: &SharedState) -> anyhow::Result<()> {
    // Direct downloads are unlinked once open; a file left is from a process that died
    // while writing one (none takes an hour).
    remove_files(
        &dir(state),
        |name| name.starts_with("direct-"),
        Some(Duration::from_secs(3600)),
    )
    .await;
    let expired = {
        let mut db = state.store.read().await?;
        store::exports::expired_files(&mut db, now_ms()).await?
    };
    for e in expired {
        if let Some(name) = &e.stored_name {
            let _ = tokio::fs::remove_file(dir(state).join(name)).await;
        }
        let mut tx = state.store.begin().await?;
        store::exports::forget_file(&mut tx, e.id).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Removes the files of `dir` whose name `pick` picks (and, with `older_than`, that were
/// last written longer ago than that).
pub(crate) async fn remove_files(
    dir: &std::path::Path,
    pick: impl Fn(&str) -> bool,
    older_than: Option<Duration>,
) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        if !name.to_str().is_some_and(&pick) {
            continue;
        }
        if let Some(age) = older_than {
            let modified = entry.metadata().await.and_then(|m| m.modified());
            let old = modified.is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age));
            if !old {
                continue;
            }
        }
        let _ = tokio::fs::remove_file(entry.path()).await;
    }
}

/// The state of an export as users see it: done as soon as its file and link are
/// recorded (the job may still be sending the email), else its job's state.
pub fn status(
    export: &store::exports::ExportRow,
    job: Option<&store::jobs::JobRow>,
) -> &'static str {
    if export.finished_at.is_some() {
        return "done";
    }
    job.map_or("done", |j| j.state.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excel_serials() {
        assert_eq!(excel_serial(0), Some(25_569.0));
        assert_eq!(excel_serial(1_714_564_800_000), Some(45_413.5)); // 2024-05-01 12:00
        assert_eq!(excel_serial(-2_203_891_200_000), Some(61.0)); // 1900-03-01
        assert_eq!(excel_serial(-2_203_891_200_001), None);
    }

    #[test]
    fn neutralizing() {
        let cases = [
            ("=1+1", "'=1+1"),
            ("+49 30 1234", "'+49 30 1234"),
            ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("-5", "-5"),
            ("+1.5", "+1.5"),
            ("-", "'-"),
            ("-.5", "'-.5"),
            ("'=x", "''=x"),
            ("'hello", "'hello"),
            ("ada@example.org", "ada@example.org"),
            ("", ""),
            ("a=b", "a=b"),
        ];
        for (input, want) in cases {
            assert_eq!(neutralize(input), want, "{input:?}");
        }
    }

    /// Past a sheet's row limit (Excel's 1,048,576, here 3) the rows go on in a new sheet
    /// with the header again, nothing lost or repeated; a value longer than a cell holds
    /// is cut.
    #[test]
    fn xlsx_continues_on_new_sheets_at_the_row_limit() {
        use calamine::{Data, Reader, Xlsx};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.xlsx");
        let headers = vec!["id".to_owned(), "email".to_owned()];
        let mut sink = Sink::open_with(Format::Xlsx, &path, &headers, 3).unwrap();
        let mut date = String::new();
        for id in 1..=5 {
            let email = format!("=c{id}@x.org");
            sink.row(&[CellRef::Int(id), CellRef::Text(&email)], &mut date)
                .unwrap();
        }
        // Longer than a cell holds: cut, not an error.
        let long = "x".repeat(40_000);
        sink.row(&[CellRef::Int(6), CellRef::Text(&long)], &mut date)
            .unwrap();
        sink.finish().unwrap();
        let mut book: Xlsx<_> = calamine::open_workbook(&path).unwrap();
        let names = book.sheet_names();
        assert_eq!(names, ["Contacts 1", "Contacts 2", "Contacts 3"]);
        let rows: Vec<Vec<Vec<Data>>> = names
            .iter()
            .map(|n| {
                let range = book.worksheet_range(n).unwrap();
                range.rows().map(|r| r.to_vec()).collect()
            })
            .collect();
        let header = vec![Data::String("id".into()), Data::String("email".into())];
        let row = |id: i64| {
            vec![
                Data::Float(id as f64),
                Data::String(format!("'=c{id}@x.org")),
            ]
        };
        assert_eq!(rows[0], [header.clone(), row(1), row(2)]);
        assert_eq!(rows[1], [header.clone(), row(3), row(4)]);
        let cut = vec![
            Data::Float(6.0),
            Data::String(format!("{}…", &long[..32_766])),
        ];
        assert_eq!(rows[2], [header, row(5), cut]);
    }

    /// A value longer than an Excel cell holds is cut to the limit, on a character
    /// boundary, and marked; shorter ones are untouched.
    #[test]
    fn xlsx_cells_hold_at_most_excels_limit() {
        let units = |s: &str| s.encode_utf16().count();
        for (text, cut) in [
            ("short".to_owned(), false),
            ("a".repeat(32_767), false),
            ("é".repeat(32_767), false),
            ("a".repeat(40_000), true),
            ("😀".repeat(20_000), true),
            (format!("{}😀", "a".repeat(32_766)), true),
        ] {
            let out = xlsx_cell_text(&text);
            assert!(units(&out) <= XLSX_MAX_CELL_UNITS, "{}", units(&out));
            if cut {
                assert!(out.ends_with('…'));
                assert!(text.starts_with(out.trim_end_matches('…')));
                assert!(units(&out) >= XLSX_MAX_CELL_UNITS - 1);
            } else {
                assert_eq!(out, text);
            }
        }
    }

    #[test]
    fn dates_format_like_the_api() {
        for ms in [
            0,
            1_714_564_800_000,
            1_714_564_800_999,
            -86_400_000,
            253_402_300_799_000,
            4_102_444_800_000,
        ] {
            assert_eq!(fast_datetime(ms), sql_datetime(ms), "{ms}");
        }
        // Around the ends of years 0 and 9999, and a spread over the whole range.
        let mut edges = vec![i64::MIN, i64::MAX, -1, 1, 999, -999, -1000, -1001];
        for year0 in [-62_167_219_200_000_i64, 253_402_300_800_000] {
            edges.extend((-2000..2000).map(|d| year0 + d * 1000 + d % 7));
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            edges.push((x % 600_000_000_000_000) as i64 - 300_000_000_000_000);
        }
        for ms in edges {
            assert_eq!(fast_datetime(ms), sql_datetime(ms), "{ms}");
        }
    }

    #[test]
    fn csv_quoting() {
        let mut out = Vec::new();
        write_csv_row(
            &mut out,
            ["a", "b,c", "say \"hi\"", "two\nlines", ""].map(std::borrow::Cow::Borrowed),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,\"b,c\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n"
        );
        assert_eq!(cell_text(&Cell::Float(5.0)), "5");
        assert_eq!(cell_text(&Cell::Float(2.5)), "2.5");
        assert_eq!(cell_text(&Cell::Text("=x".into())), "'=x");
    }

    #[test]
    fn queries() {
        let q = Query::from_map(json!({"search": "tag:vip", "where": [{"col": "city", "expr": "eq", "val": "Paris"}], "ids": "3,1"}).as_object().unwrap()).unwrap();
        assert_eq!(q.ids, Some(vec![3, 1]));
        assert_eq!(q.wheres.len(), 1);
        let back = Query::from_map(q.to_json().as_object().unwrap()).unwrap();
        assert_eq!(back, q);
        assert!(Query::from_map(json!({"ids": "1,x"}).as_object().unwrap()).is_err());
        assert!(Query::from_map(json!({"ids": []}).as_object().unwrap()).is_err());
    }
}
