//! CSV import: upload (streamed to `<data-dir>/imports/`), preview with a proposed
//! mapping, start (mapping and options), and the background job that writes the rows.
//!
//! The job reads the file from its checkpoint (a byte offset at a record boundary) and
//! writes batches of rows through `contacts::service::save_in`, each with its timeline
//! events, its failed rows, the new checkpoint and the lease check, in the transaction
//! of the batch (several share one while nobody else waits for the writer). A crash or a
//! kill between two commits therefore loses nothing and repeats nothing: the next run
//! starts where the last commit ended.

pub mod csv;
pub mod detect;
pub mod mapping;

use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};
use tokio::io::AsyncWriteExt;

use crate::config::UniqueIdentifierOperator;
use crate::contacts::field_service;
use crate::contacts::fields::FieldSet;
use crate::contacts::input::{ContactInput, normalize_tag};
use crate::contacts::service::{self, SaveContext, Source, Target as SaveTarget};
use crate::error::{AppError, AppResult};
use crate::jobs::{self, Control, JobCtx, Outcome};
use crate::state::SharedState;
use crate::store;
use crate::store::Tx;
use crate::store::imports::{Checkpoint, Failure, ImportRow};
use crate::store::jobs::{JobRow, JobState};
use crate::time::now_ms;
use crate::timeline::{NewEvent, keys};
use crate::users::User;
use csv::{CsvReader, Dialect, Encoding, Position, Record};
use mapping::{Special, Target};

/// Rows shown in a preview.
pub const PREVIEW_ROWS: usize = 10;

/// The directory of uploaded files.
pub fn dir(state: &SharedState) -> PathBuf {
    state.config.data_dir.join("imports")
}

fn file_path(state: &SharedState, import: &ImportRow) -> PathBuf {
    dir(state).join(&import.stored_name)
}

// ---------------------------------------------------------------------------------------
// Settings kept with an import (JSON in `imports.settings`).

/// Whether an existing contact is updated or left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfExists {
    Update,
    Skip,
}

/// How rows find the contact they describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchBy {
    /// The unique-identifier fields, combined with AND or OR.
    Identifiers,
    /// The column mapped to `id`.
    Id,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Owner of imported contacts whose row names none.
    pub owner: Option<i64>,
    /// Tags added to every imported contact.
    pub tags: Vec<String>,
    pub if_exists: IfExists,
    pub match_by: MatchBy,
    pub operator: UniqueIdentifierOperator,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub dialect: Dialect,
    pub notes: Vec<String>,
    /// Set once started: the target of each column and the number of header columns.
    pub columns: Vec<Target>,
    pub header_count: usize,
    /// The header as read at start (for the failed-rows file).
    pub headers: Vec<String>,
    pub options: Option<Options>,
}

fn op_str(op: UniqueIdentifierOperator) -> &'static str {
    match op {
        UniqueIdentifierOperator::And => "and",
        UniqueIdentifierOperator::Or => "or",
    }
}

impl Settings {
    pub fn to_json(&self) -> Json {
        let columns: Vec<Json> = self
            .columns
            .iter()
            .map(|t| t.name().map_or(Json::Null, |n| json!(n)))
            .collect();
        let options = self.options.as_ref().map(|o| {
            json!({
                "owner": o.owner,
                "tags": o.tags,
                "ifExists": match o.if_exists { IfExists::Update => "update", IfExists::Skip => "skip" },
                "matchBy": match o.match_by { MatchBy::Identifiers => "identifiers", MatchBy::Id => "id" },
                "operator": op_str(o.operator),
            })
        });
        json!({
            "delimiter": detect::delimiter_name(self.dialect.delimiter),
            "quote": (self.dialect.quote as char).to_string(),
            "encoding": self.dialect.encoding.as_str(),
            "bom": self.dialect.bom,
            "notes": self.notes,
            "columns": columns,
            "headerCount": self.header_count,
            "headers": self.headers,
            "options": options,
        })
    }

    pub fn from_json(j: &Json, fields: Option<&FieldSet>) -> Settings {
        let ch = |k: &str, d: u8| {
            j.get(k)
                .and_then(Json::as_str)
                .and_then(detect::parse_char)
                .unwrap_or(d)
        };
        let dialect = Dialect {
            delimiter: ch("delimiter", b','),
            quote: ch("quote", b'"'),
            encoding: j
                .get("encoding")
                .and_then(Json::as_str)
                .and_then(Encoding::parse)
                .unwrap_or(Encoding::Utf8),
            bom: j.get("bom").and_then(Json::as_bool).unwrap_or(false),
        };
        let columns = j
            .get("columns")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| match v.as_str() {
                        None => Target::Skip,
                        Some(name) => match Special::parse(name) {
                            Some(s) if fields.is_none_or(|f| f.get(name).is_none()) => {
                                Target::Special(s)
                            }
                            _ => Target::Field(name.to_owned()),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        let options = j.get("options").filter(|o| o.is_object()).map(|o| Options {
            owner: o.get("owner").and_then(Json::as_i64),
            tags: o
                .get("tags")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            if_exists: if o.get("ifExists").and_then(Json::as_str) == Some("skip") {
                IfExists::Skip
            } else {
                IfExists::Update
            },
            match_by: if o.get("matchBy").and_then(Json::as_str) == Some("id") {
                MatchBy::Id
            } else {
                MatchBy::Identifiers
            },
            operator: if o.get("operator").and_then(Json::as_str) == Some("or") {
                UniqueIdentifierOperator::Or
            } else {
                UniqueIdentifierOperator::And
            },
        });
        Settings {
            dialect,
            notes: j
                .get("notes")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            columns,
            header_count: j.get("headerCount").and_then(Json::as_u64).unwrap_or(0) as usize,
            headers: j
                .get("headers")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .map(|t| t.as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            options,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Upload.

/// An upload being streamed to disk. Dropped without `finish`, it deletes its file.
pub struct Upload {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    tmp: PathBuf,
    stored_name: String,
    bytes: u64,
    /// Line feeds, and carriage returns (the line ends when there is no line feed).
    lines: u64,
    cr_lines: u64,
    limit: u64,
    sample: Vec<u8>,
    /// When the buffer last went to the file: at least once a minute while data comes,
    /// so the file of an upload in progress never looks abandoned
    /// (`delete_abandoned_uploads`).
    flushed_at: std::time::Instant,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Upload {
    pub async fn begin(state: &SharedState) -> AppResult<Upload> {
        let dir = dir(state);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| {
            AppError::Internal(anyhow::anyhow!("cannot create {}: {e}", dir.display()))
        })?;
        let stored_name = format!("{}-{:016x}.csv", now_ms(), rand::random::<u64>());
        let tmp = dir.join(format!("{stored_name}.part"));
        let file = tokio::fs::File::create(&tmp).await.map_err(|e| {
            AppError::Internal(anyhow::anyhow!("cannot create {}: {e}", tmp.display()))
        })?;
        Ok(Upload {
            file: Some(tokio::io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
            stored_name,
            bytes: 0,
            lines: 0,
            cr_lines: 0,
            limit: state.config.file.import.max_upload_bytes,
            sample: Vec::new(),
            flushed_at: std::time::Instant::now(),
        })
    }

    /// Appends a chunk; past `[import] max_upload_bytes` this is a 413 (and the file goes).
    pub async fn write(&mut self, chunk: &[u8]) -> AppResult<()> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(AppError::PayloadTooLarge(format!(
                "the file is larger than the import limit of {} bytes ([import] max_upload_bytes)",
                self.limit
            )));
        }
        self.lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        // Files from old Mac spreadsheets end lines with CR alone.
        self.cr_lines += memchr::memchr_iter(b'\r', chunk).count() as u64;
        if self.sample.len() < detect::SAMPLE_BYTES {
            let take = (detect::SAMPLE_BYTES - self.sample.len()).min(chunk.len());
            self.sample.extend_from_slice(&chunk[..take]);
        }
        let file = self.file.as_mut().expect("open until finished");
        let written = async {
            file.write_all(chunk).await?;
            if self.flushed_at.elapsed() >= std::time::Duration::from_secs(60) {
                file.flush().await?;
                self.flushed_at = std::time::Instant::now();
            }
            std::io::Result::Ok(())
        };
        written
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot write the upload: {e}")))
    }

    /// Checks that the file is CSV, keeps it and records the import.
    pub async fn finish(
        mut self,
        state: &SharedState,
        user: &User,
        file_name: &str,
    ) -> AppResult<ImportRow> {
        let complete = self.bytes <= self.sample.len() as u64;
        let sniffed =
            detect::sniff(&self.sample, complete).map_err(|m| AppError::invalid("file", m))?;
        let mut file = self.file.take().expect("open until finished");
        let written = async {
            file.flush().await?;
            file.get_mut().sync_all().await?;
            drop(file);
            tokio::fs::rename(&self.tmp, dir(state).join(&self.stored_name)).await
        }
        .await;
        if let Err(e) = written {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(AppError::Internal(anyhow::anyhow!(
                "cannot store the upload: {e}"
            )));
        }
        let mut lines = if self.lines == 0 {
            self.cr_lines
        } else {
            self.lines
        };
        if !self.sample.is_empty()
            && !self.sample.ends_with(b"\n")
            && !self.sample.ends_with(b"\r")
            && complete
        {
            lines += 1;
        }
        let settings = Settings {
            dialect: sniffed.dialect,
            notes: sniffed.notes,
            columns: Vec::new(),
            header_count: 0,
            headers: Vec::new(),
            options: None,
        };
        let name = clean_file_name(file_name);
        let mut tx = state.store.begin().await?;
        let id = store::imports::insert(
            &mut tx,
            &store::imports::NewImport {
                created_by: Some(user.id),
                file_name: &name,
                stored_name: &self.stored_name,
                size_bytes: self.bytes as i64,
                line_count: lines as i64,
                settings: &settings.to_json(),
            },
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        let mut db = state.store.read().await?;
        store::imports::get(&mut db, id)
            .await?
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("import {id} vanished")))
    }
}

/// Removes uploads a process left half-written when it died (`….part`). An upload in
/// progress writes to its file at least once a minute while data comes (`Upload::write`),
/// and no body may stay silent for more than ten minutes (`http::serve`), so a file
/// untouched for an hour is abandoned — whichever server sharing the data directory
/// received it.
pub async fn delete_abandoned_uploads(state: &SharedState) {
    crate::exports::remove_files(
        &dir(state),
        |name| name.ends_with(".part"),
        Some(std::time::Duration::from_secs(3600)),
    )
    .await;
}

/// The name shown for an upload: the last path component, no control characters.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.trim().is_empty() {
        "upload.csv".to_owned()
    } else {
        clean.trim().to_owned()
    }
}

// ---------------------------------------------------------------------------------------
// Access.

/// An import the user may see (their own, or any for an admin).
pub async fn get_for(
    state: &SharedState,
    user: &User,
    id: i64,
) -> AppResult<(ImportRow, Option<JobRow>)> {
    // One snapshot: a job is marked done after its last batch committed, so the import
    // and its job read apart could show "done" without that batch.
    let mut db = state.store.snapshot().await?;
    let import = store::imports::get(&mut db, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    if !user.is_admin() && import.created_by != Some(user.id) {
        return Err(AppError::not_found());
    }
    let job = match import.job_id {
        Some(j) => store::jobs::get(&mut db, j).await?,
        None => None,
    };
    Ok((import, job))
}

/// The imports a user may see, newest first, with their jobs; and how many there are.
pub async fn list_for(
    state: &SharedState,
    user: &User,
    start: i64,
    limit: i64,
) -> AppResult<(Vec<(ImportRow, Option<JobRow>)>, i64)> {
    let mut db = state.store.snapshot().await?; // see `get_for`
    let owner = if user.is_admin() { None } else { Some(user.id) };
    let (rows, total) = store::imports::list(&mut db, owner, start, limit).await?;
    let job_ids: Vec<i64> = rows.iter().filter_map(|i| i.job_id).collect();
    let mut jobs = jobs::states(&mut db, &job_ids).await?;
    let rows = rows
        .into_iter()
        .map(|i| {
            let job = i.job_id.and_then(|j| jobs.remove(&j));
            (i, job)
        })
        .collect();
    Ok((rows, total))
}

// ---------------------------------------------------------------------------------------
// Preview.

/// Dialect changes asked for by the user (preview and start).
#[derive(Clone, Debug, Default)]
pub struct DialectOverride {
    pub delimiter: Option<u8>,
    pub quote: Option<u8>,
    pub encoding: Option<Encoding>,
}

impl DialectOverride {
    /// From `delimiter`, `quote`, `encoding` keys of a JSON object; bad values are 422s.
    pub fn from_json(o: &Map<String, Json>) -> AppResult<DialectOverride> {
        let mut d = DialectOverride::default();
        for key in ["delimiter", "quote", "encoding"] {
            if !matches!(o.get(key), None | Some(Json::Null | Json::String(_))) {
                return Err(AppError::invalid(key, "must be a string"));
            }
        }
        if let Some(v) = o
            .get("delimiter")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
        {
            d.delimiter = Some(detect::parse_char(v).ok_or_else(|| {
                AppError::invalid("delimiter", "must be one character such as , ; | or tab")
            })?);
        }
        if let Some(v) = o
            .get("quote")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
        {
            d.quote = Some(detect::parse_char(v).ok_or_else(|| {
                AppError::invalid("quote", "must be one character such as \" or '")
            })?);
        }
        if let Some(v) = o
            .get("encoding")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
        {
            d.encoding =
                Some(Encoding::parse(v).ok_or_else(|| {
                    AppError::invalid("encoding", "must be utf-8 or windows-1252")
                })?);
        }
        Ok(d)
    }

    /// The detected dialect with these overrides; a quote that is also the delimiter
    /// could never be read, so it is a 422.
    fn apply(&self, mut d: Dialect) -> AppResult<Dialect> {
        if let Some(x) = self.delimiter {
            d.delimiter = x;
        }
        if let Some(x) = self.quote {
            d.quote = x;
        }
        if let Some(x) = self.encoding {
            d.encoding = x;
        }
        if d.quote == d.delimiter {
            return Err(AppError::invalid("quote", "must differ from the delimiter"));
        }
        Ok(d)
    }
}

pub struct Preview {
    pub dialect: Dialect,
    pub notes: Vec<String>,
    pub headers: Vec<String>,
    /// The first rows (or why each could not be read).
    pub rows: Vec<Result<Vec<String>, String>>,
    pub proposals: Vec<mapping::Proposal>,
    pub warnings: Vec<String>,
}

/// The header and the first data rows; the position after the header.
fn read_head(
    path: PathBuf,
    dialect: Dialect,
    max_record: usize,
    rows: usize,
) -> Result<(Vec<String>, Vec<Record>, Position), String> {
    let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            "the uploaded file is no longer kept (an import's file is removed when it finishes)"
                .to_owned()
        }
        _ => format!("the uploaded file cannot be read: {e}"),
    })?;
    let mut reader = CsvReader::new(
        BufReader::with_capacity(1 << 16, file),
        dialect,
        max_record,
        Position::default(),
    )
    .map_err(|e| format!("the uploaded file cannot be read: {e}"))?;
    let header = match reader
        .next_record()
        .map_err(|e| format!("the uploaded file cannot be read: {e}"))?
    {
        None => return Err("the file has no rows".into()),
        Some(Record { fields: Ok(h), .. }) => h,
        Some(Record {
            fields: Err(bad), ..
        }) => {
            return Err(format!(
                "the first row (the header) cannot be read: {}",
                bad.reason
            ));
        }
    };
    let after_header = reader.position();
    reader.expected_fields = Some(header.len());
    let mut out = Vec::new();
    while out.len() < rows {
        match reader.next_record() {
            Ok(Some(r)) => out.push(r),
            Ok(None) => break,
            Err(e) => return Err(format!("the uploaded file cannot be read: {e}")),
        }
    }
    let header = header
        .into_iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    Ok((header, out, after_header))
}

pub async fn preview(
    state: &SharedState,
    import: &ImportRow,
    over: &DialectOverride,
) -> AppResult<Preview> {
    let settings = Settings::from_json(&import.settings, None);
    let dialect = over.apply(settings.dialect)?;
    let path = file_path(state, import);
    let max = state.config.file.import.max_record_bytes;
    let (headers, rows, _) =
        tokio::task::spawn_blocking(move || read_head(path, dialect, max, PREVIEW_ROWS))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
            .map_err(|m| AppError::invalid("file", m))?;
    let mut db = state.store.read().await?;
    let fields = state.fields(&mut db).await?;
    let (proposals, mut warnings) = mapping::propose(&headers, &fields);
    if headers.len() == 1 && import.size_bytes > 0 {
        warnings.push(format!(
            "only one column was found with the delimiter '{}': if the preview looks wrong, choose another delimiter",
            detect::delimiter_name(dialect.delimiter).replace('\t', "tab")
        ));
    }
    if proposals.iter().all(|p| p.target == Target::Skip) {
        warnings.push(
            "no column matches a contact field by name: map the columns before starting".to_owned(),
        );
    } else {
        // Columns nothing will receive, named: custom fields of another Magpie's export
        // must not vanish without a word.
        let mut seen = HashSet::new();
        let unmatched: Vec<&str> = proposals
            .iter()
            .zip(&headers)
            .filter(|(_, h)| seen.insert(h.trim().to_lowercase()))
            .filter(|(p, h)| p.target == Target::Skip && !h.trim().is_empty())
            .map(|(_, h)| h.trim())
            .collect();
        if !unmatched.is_empty() {
            let shown: Vec<&str> = unmatched.iter().take(10).copied().collect();
            warnings.push(format!(
                "{} {} no contact field and will not be imported unless you map {} (or create a field): {}{}",
                unmatched.len(),
                if unmatched.len() == 1 { "column matches" } else { "columns match" },
                if unmatched.len() == 1 { "it" } else { "them" },
                shown.join(", "),
                if unmatched.len() > shown.len() { ", …" } else { "" }
            ));
        }
    }
    let rows = rows
        .into_iter()
        .map(|r| {
            r.fields
                .map(|f| f.into_iter().map(|v| csv::clip(&v)).collect())
                .map_err(|b| format!("row {}: {}", r.row, b.reason))
        })
        .collect();
    let notes = if over.encoding.is_some() {
        Vec::new()
    } else {
        settings.notes
    };
    Ok(Preview {
        dialect,
        notes,
        headers,
        rows,
        proposals,
        warnings,
    })
}

// ---------------------------------------------------------------------------------------
// Start, stop, resume.

/// Reads the mapping of a start request: a list of `{"column": i, "field": alias|special|null}`
/// or `{"column": i, "create": {field definition}}`, or an object
/// `{"<header or column number>": alias | null | {"create": {…}}}`. Without a mapping the
/// proposal is used.
fn parse_mapping(
    body: &Map<String, Json>,
    headers: &[String],
    proposals: &[mapping::Proposal],
) -> AppResult<Vec<(usize, Json)>> {
    let Some(m) = body.get("mapping").filter(|m| !m.is_null()) else {
        return Ok(proposals
            .iter()
            .map(|p| (p.column, p.target.name().map_or(Json::Null, |n| json!(n))))
            .collect());
    };
    // A column by number, or by header (exactly, then in another case). An object's keys
    // try a header first: a file may have headers such as "2024".
    let column_of = |key: &Json, header_first: bool| -> AppResult<usize> {
        let by_header = |s: &str| headers.iter().position(|h| h.trim() == s);
        let by_header_folded = |s: &str| {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(s))
        };
        let idx = match key {
            Json::Number(n) => n.as_u64().map(|n| n as usize),
            Json::String(s) => {
                let s = s.trim();
                let number = s.parse::<usize>().ok();
                match header_first {
                    true => by_header(s).or(number),
                    false => number.or_else(|| by_header(s)),
                }
                .or_else(|| by_header_folded(s))
            }
            _ => None,
        };
        idx.filter(|i| *i < headers.len())
            .ok_or_else(|| AppError::invalid("mapping", format!("{key} is not a column of the file (columns are numbered from 0, or named by their header)")))
    };
    let mut out = Vec::new();
    match m {
        Json::Array(items) => {
            for item in items {
                let o = item.as_object().ok_or_else(|| {
                    AppError::invalid(
                        "mapping",
                        "each entry must be an object with column and field (or create)",
                    )
                })?;
                let column = column_of(o.get("column").unwrap_or(&Json::Null), false)?;
                let target = match (o.get("create"), o.get("field")) {
                    (Some(c), _) if !c.is_null() => json!({ "create": c }),
                    (_, Some(f)) => f.clone(),
                    (_, None) => Json::Null,
                };
                out.push((column, target));
            }
        }
        Json::Object(map) => {
            for (k, v) in map {
                out.push((column_of(&Json::String(k.clone()), true)?, v.clone()));
            }
        }
        _ => {
            return Err(AppError::invalid(
                "mapping",
                "must be a list of {column, field} or an object of column → field",
            ));
        }
    }
    Ok(out)
}

fn parse_options(
    body: &Map<String, Json>,
    default_operator: UniqueIdentifierOperator,
) -> AppResult<Options> {
    let owner = match body.get("owner") {
        None | Some(Json::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .or_else(|| v.get("id").and_then(Json::as_i64))
                .filter(|i| *i > 0)
                .ok_or_else(|| AppError::invalid("owner", "must be a user id"))?,
        ),
    };
    let tags = match body.get("tags") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::String(s)) => s.split(',').map(str::to_owned).collect(),
        Some(Json::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| AppError::invalid("tags", "must be strings"))
            })
            .collect::<AppResult<_>>()?,
        Some(_) => return Err(AppError::invalid("tags", "must be a list of tags")),
    };
    let mut clean = Vec::new();
    for t in tags {
        if t.trim().is_empty() {
            continue;
        }
        let t = normalize_tag(t.trim()).map_err(|m| AppError::invalid("tags", m))?;
        if !clean.contains(&t) {
            clean.push(t);
        }
    }
    let text = |key: &str| match body.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(AppError::invalid(key, "must be a string")),
    };
    let if_exists = match text("ifExists")? {
        None | Some("update") => IfExists::Update,
        Some("skip") => IfExists::Skip,
        Some(_) => return Err(AppError::invalid("ifExists", "must be update or skip")),
    };
    let match_by = match text("matchBy")? {
        None | Some("identifiers") => MatchBy::Identifiers,
        Some("id") => MatchBy::Id,
        Some(_) => return Err(AppError::invalid("matchBy", "must be identifiers or id")),
    };
    let operator = match text("operator")? {
        None => default_operator,
        Some("and") => UniqueIdentifierOperator::And,
        Some("or") => UniqueIdentifierOperator::Or,
        Some(_) => return Err(AppError::invalid("operator", "must be and or or")),
    };
    Ok(Options {
        owner,
        tags: clean,
        if_exists,
        match_by,
        operator,
    })
}

/// Starts an import that was uploaded and not started yet: checks the mapping and the
/// options, creates the new fields, and queues the job.
pub async fn start(state: &SharedState, user: &User, id: i64, body: &Json) -> AppResult<()> {
    let (import, job) = get_for(state, user, id).await?;
    if job.is_some() {
        return Err(AppError::Conflict(
            "this import was already started; stop or resume it instead".into(),
        ));
    }
    let body = match body {
        Json::Object(o) => o.clone(),
        Json::Null => Map::new(),
        _ => {
            return Err(AppError::bad_request(
                "the body must be a JSON object with mapping and options",
            ));
        }
    };
    // A misspelt option must not be read as its default (`if_exists` would update the
    // contacts the caller asked to skip).
    const START_KEYS: [&str; 9] = [
        "mapping",
        "ifExists",
        "matchBy",
        "operator",
        "owner",
        "tags",
        "delimiter",
        "quote",
        "encoding",
    ];
    let mut unknown = crate::contacts::input::Problems::default();
    for key in body.keys().filter(|k| !START_KEYS.contains(&k.as_str())) {
        unknown.add(
            key,
            "is not an option of an import (mapping, ifExists, matchBy, operator, owner, tags, delimiter, quote, encoding)",
        );
    }
    unknown.into_result()?;
    let mut settings = Settings::from_json(&import.settings, None);
    let over = DialectOverride::from_json(&body)?;
    if over.encoding.is_some() {
        settings.notes.clear();
    }
    settings.dialect = over.apply(settings.dialect)?;
    let path = file_path(state, &import);
    let max = state.config.file.import.max_record_bytes;
    let dialect = settings.dialect;
    let (headers, _, after_header) =
        tokio::task::spawn_blocking(move || read_head(path, dialect, max, 0))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
            .map_err(|m| AppError::invalid("file", m))?;

    let (fields, mut options) = {
        let mut db = state.store.read().await?;
        let fields = state.fields(&mut db).await?;
        let operator = state.operator(&mut db).await?;
        let options = parse_options(&body, operator)?;
        if let Some(o) = options.owner
            && store::users::by_id(&mut db, o).await?.is_none()
        {
            return Err(AppError::invalid(
                "owner",
                format!("there is no user with id {o}"),
            ));
        }
        (fields, options)
    };
    let (proposals, _) = mapping::propose(&headers, &fields);
    let entries = parse_mapping(&body, &headers, &proposals)?;

    // Resolve each entry; fields to create are created last, once everything else is valid.
    let mut columns = vec![Target::Skip; headers.len()];
    let mut to_create: Vec<(usize, Json)> = Vec::new();
    let mut problems = crate::contacts::input::Problems::default();
    let mut seen_columns = HashSet::new();
    for (column, target) in entries {
        let label = format!("column {} ({})", column, headers[column]);
        if !seen_columns.insert(column) {
            problems.add("mapping", format!("{label} is mapped twice"));
            continue;
        }
        match &target {
            Json::Null => {}
            Json::String(s) if s.is_empty() || s == "-" => {}
            // Aliases are lower case; `Email` means `email`, as `TAGS` means `tags`.
            Json::String(name) => match (
                fields
                    .get(name)
                    .or_else(|| fields.get(&name.to_lowercase())),
                Special::parse(name),
            ) {
                (Some(f), _) => columns[column] = Target::Field(f.alias.clone()),
                (None, Some(s)) => columns[column] = Target::Special(s),
                (None, None) => problems.add(
                    "mapping",
                    format!("{label}: '{name}' is not a contact field"),
                ),
            },
            Json::Object(o) if o.contains_key("create") => {
                let mut def = o.get("create").cloned().unwrap_or(Json::Null);
                if let Json::Object(d) = &mut def {
                    d.entry("label")
                        .or_insert_with(|| json!(headers[column].clone()));
                    d.entry("type").or_insert_with(|| json!("text"));
                } else if def.is_null() || def == json!(true) {
                    def = json!({ "label": headers[column].clone(), "type": "text" });
                } else {
                    problems.add("mapping", format!("{label}: create must be a field definition like {{\"label\": \"Shoe size\", \"type\": \"number\"}}"));
                    continue;
                }
                to_create.push((column, def));
            }
            other => problems.add(
                "mapping",
                format!("{label}: {other} is not a field alias, a special column or null"),
            ),
        }
    }
    problems.into_result()?;
    let mut problems = crate::contacts::input::Problems::default();
    let mut used: HashMap<&Target, usize> = HashMap::new();
    for (i, t) in columns.iter().enumerate() {
        if *t == Target::Skip {
            continue;
        }
        if let Some(first) = used.insert(t, i) {
            problems.add(
                "mapping",
                format!(
                    "'{}' is mapped from two columns ({} and {})",
                    t.name().unwrap_or(""),
                    first,
                    i
                ),
            );
        }
    }
    if columns.iter().all(|t| *t == Target::Skip) && to_create.is_empty() {
        problems.add(
            "mapping",
            "no column is mapped to a contact field: nothing would be imported",
        );
    }
    // A column the request itself maps to id means it: rows match by it unless
    // `matchBy` says otherwise (rows whose id names no contact still match by
    // identifiers). A proposed id column does not: an export's ids imported into another
    // Magpie must not update its contacts that happen to have those ids.
    if matches!(body.get("matchBy"), None | Some(Json::Null)) && maps_id(&body) {
        options.match_by = MatchBy::Id;
    }
    if options.match_by == MatchBy::Id && !columns.contains(&Target::Special(Special::Id)) {
        problems.add("matchBy", "matching by id needs a column mapped to id");
    }
    problems.into_result()?;
    if !user.is_admin() && !to_create.is_empty() {
        return Err(AppError::Forbidden(
            "only admins can create fields; map the column to an existing field or ask an admin"
                .into(),
        ));
    }
    // New fields and the job in one transaction: a start that is refused (a field that
    // cannot be created, a concurrent start) leaves no field behind.
    let mut tx = state.store.begin().await?;
    let created_fields = !to_create.is_empty();
    for (column, def) in to_create {
        match field_service::create_in(&mut tx, &def).await {
            Ok(f) => columns[column] = Target::Field(f.alias),
            Err(AppError::Validation { message, details }) => {
                return Err(AppError::Validation {
                    message: format!(
                        "column {} ({}): cannot create the field: {message}",
                        column, headers[column]
                    ),
                    details,
                });
            }
            Err(e) => return Err(e),
        }
    }
    settings.columns = columns;
    settings.header_count = headers.len();
    settings.headers = headers.clone();
    settings.options = Some(options);
    let job_id = jobs::enqueue(&mut tx, jobs::IMPORT, Some(user.id)).await?;
    let started = store::imports::set_started(
        &mut tx,
        id,
        job_id,
        &settings.to_json(),
        after_header.offset as i64,
        after_header.records as i64,
        after_header.lines as i64,
        now_ms(),
    )
    .await?;
    if !started {
        return Err(AppError::Conflict("this import was already started".into()));
    }
    tx.commit().await?;
    if created_fields {
        state.fields.invalidate();
    }
    state.jobs.wake();
    Ok(())
}

pub async fn stop(state: &SharedState, user: &User, id: i64) -> AppResult<()> {
    let (_, job) = get_for(state, user, id).await?;
    let job = job.ok_or_else(|| AppError::Conflict("this import was not started".into()))?;
    if matches!(job.state, JobState::Done | JobState::Failed) {
        return Err(AppError::Conflict(format!(
            "this import is {} and cannot be stopped",
            job.state.as_str()
        )));
    }
    let mut tx = state.store.begin().await?;
    store::jobs::request_stop(&mut tx, job.id, now_ms()).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn resume(state: &SharedState, user: &User, id: i64) -> AppResult<()> {
    let (import, job) = get_for(state, user, id).await?;
    let job = job.ok_or_else(|| {
        AppError::Conflict("this import was not started; start it with a mapping".into())
    })?;
    if job.state == JobState::Done {
        return Err(AppError::Conflict("this import is done".into()));
    }
    if !file_path(state, &import).exists() {
        return Err(AppError::Conflict(
            "the uploaded file is gone; upload it again".into(),
        ));
    }
    let mut tx = state.store.begin().await?;
    store::jobs::resume(&mut tx, job.id, now_ms()).await?;
    tx.commit().await?;
    state.jobs.wake();
    Ok(())
}

/// Deletes an import that is not running: its file and its record (not the contacts).
pub async fn delete(state: &SharedState, user: &User, id: i64) -> AppResult<()> {
    let (import, _) = get_for(state, user, id).await?;
    // Decided in the transaction that deletes: a start or a resume may have come in
    // between, and the job's row goes only if it is idle at the moment it is deleted.
    let mut tx = state.store.begin().await?;
    let current = store::imports::get(&mut tx, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    if let Some(job) = current.job_id
        && !store::jobs::delete_idle(&mut tx, job).await?
    {
        return Err(AppError::Conflict(
            "this import is running: stop it first".into(),
        ));
    }
    store::imports::delete(&mut tx, id).await?;
    tx.commit().await?;
    let _ = tokio::fs::remove_file(file_path(state, &import)).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Status.

/// The state of an import as users see it.
pub fn status(job: Option<&JobRow>) -> &'static str {
    match job {
        None => "new",
        Some(j) => match j.state {
            JobState::Running if j.stop_requested => "stopping",
            s => s.as_str(),
        },
    }
}

/// Progress numbers for the progress bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub rows_done: i64,
    /// Exact once the end was reached, else estimated from the line count.
    pub rows_total: i64,
    pub rows_total_exact: bool,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub percent: f64,
    pub rows_per_second: Option<f64>,
    pub eta_seconds: Option<i64>,
}

pub fn progress(import: &ImportRow, job: Option<&JobRow>, now: i64) -> Progress {
    let finished = import.total_rows.is_some();
    let rows_total = import
        .total_rows
        .unwrap_or_else(|| (import.line_count - 1).max(import.rows_done));
    let bytes_done = if finished {
        import.size_bytes
    } else {
        import.offset_bytes.min(import.size_bytes)
    };
    let percent = if import.size_bytes > 0 {
        (bytes_done as f64 * 100.0 / import.size_bytes as f64 * 10.0).round() / 10.0
    } else {
        100.0
    };
    let running = job.is_some_and(|j| j.state == JobState::Running);
    let (mut rate, mut eta) = (None, None);
    if let (true, Some(since)) = (running, import.run_started_at) {
        let secs = (now - since) as f64 / 1000.0;
        let bytes = (import.offset_bytes - import.run_bytes_start) as f64;
        if secs >= 0.5 && bytes > 0.0 && import.offset_bytes > 0 {
            let bytes_per_s = bytes / secs;
            let rows_per_byte = import.rows_done as f64 / import.offset_bytes as f64;
            rate = Some((bytes_per_s * rows_per_byte * 10.0).round() / 10.0);
            eta = Some(
                ((import.size_bytes - import.offset_bytes).max(0) as f64 / bytes_per_s).ceil()
                    as i64,
            );
        }
    }
    Progress {
        rows_done: import.rows_done,
        rows_total,
        rows_total_exact: finished,
        bytes_done,
        bytes_total: import.size_bytes,
        percent,
        rows_per_second: rate,
        eta_seconds: eta,
    }
}

// ---------------------------------------------------------------------------------------
// The job.

/// A batch read by the parser thread.
struct Batch {
    records: Vec<Record>,
    end: Position,
    eof: bool,
}

/// Most bytes of values in one batch (wide rows make smaller batches).
const BATCH_BYTES: usize = 16 * 1024 * 1024;

fn spawn_parser(
    path: PathBuf,
    dialect: Dialect,
    max_record: usize,
    at: Position,
    expected: usize,
    batch_rows: usize,
) -> tokio::sync::mpsc::Receiver<std::io::Result<Batch>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let run = || -> std::io::Result<()> {
            let file = std::fs::File::open(&path)?;
            let mut reader = CsvReader::new(
                BufReader::with_capacity(1 << 20, file),
                dialect,
                max_record,
                at,
            )?;
            reader.expected_fields = Some(expected);
            loop {
                let mut records = Vec::with_capacity(batch_rows);
                let mut bytes = 0;
                let mut eof = false;
                while records.len() < batch_rows && bytes < BATCH_BYTES {
                    match reader.next_record()? {
                        Some(r) => {
                            bytes += match &r.fields {
                                Ok(f) => f.iter().map(|v| v.len() + 24).sum::<usize>(),
                                Err(b) => b.values.iter().map(String::len).sum(),
                            };
                            records.push(r);
                        }
                        None => {
                            eof = true;
                            break;
                        }
                    }
                }
                let batch = Batch {
                    records,
                    end: reader.position(),
                    eof,
                };
                if tx.blocking_send(Ok(batch)).is_err() || eof {
                    return Ok(());
                }
            }
        };
        if let Err(e) = run() {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// What the job needs to know beyond the batch.
struct Plan {
    import_id: i64,
    file_name: String,
    actor: Option<i64>,
    columns: Vec<Target>,
    header_count: usize,
    options: Options,
    /// Usernames as written → user id (two may differ only in case).
    users_exact: HashMap<String, i64>,
    /// Lower-cased username and email → user id; and all user ids.
    users_by_name: HashMap<String, i64>,
    user_ids: HashSet<i64>,
    /// Lower-cased stage name → id; and all stage ids.
    stages_by_name: HashMap<String, i64>,
    stage_ids: HashSet<i64>,
}

impl Plan {
    /// The stages rows may name: `(id, name)` of each.
    fn set_stages(&mut self, stages: Vec<(i64, String)>) {
        self.stage_ids = stages.iter().map(|(id, _)| *id).collect();
        self.stages_by_name = stages
            .into_iter()
            .map(|(id, n)| (n.to_lowercase(), id))
            .collect();
    }
}

/// A row turned into what the write path takes.
struct Item {
    row: i64,
    line: i64,
    input: ContactInput,
    id: Option<i64>,
    date_added: Option<i64>,
    date_identified: Option<i64>,
    /// A stage named in the row that does not exist yet.
    new_stage: Option<String>,
    values: Vec<String>,
}

impl Item {
    /// This row as a failed one, its values whole: the failed-rows file is for fixing
    /// and importing again.
    fn failure(&self, reason: String) -> Failure {
        Failure {
            row: self.row,
            line: self.line,
            reason,
            values: self.values.clone(),
        }
    }
}

#[derive(Default)]
struct Counts {
    created: i64,
    updated: i64,
    skipped: i64,
    failed: i64,
}

pub async fn run_job(state: &SharedState, ctx: &JobCtx) -> anyhow::Result<Outcome> {
    let import = {
        let mut db = state.store.read().await?;
        match store::imports::by_job(&mut db, ctx.job.id).await? {
            Some(i) => i,
            None => return Ok(Outcome::Failed("the import record is gone".into())),
        }
    };
    let path = file_path(state, &import);
    if import.total_rows.is_some() {
        // Finished before a crash that came before the file was removed.
        let _ = tokio::fs::remove_file(&path).await;
        return Ok(Outcome::Done);
    }
    if !path.exists() {
        // Retried: with several processes on one PostgreSQL, another one (sharing the
        // data directory, as it must) may see it.
        anyhow::bail!(
            "the uploaded file {} is not in this server's data directory (deleted, or the servers sharing this database do not share their data directory)",
            import.stored_name
        );
    }
    let settings = Settings::from_json(&import.settings, None);
    let Some(options) = settings.options.clone() else {
        return Ok(Outcome::Failed(
            "the import has no mapping; start it again".into(),
        ));
    };
    let mut plan = {
        let mut db = state.store.read().await?;
        let mut users_by_name = HashMap::new();
        let mut users_exact = HashMap::new();
        let mut user_ids = HashSet::new();
        for u in store::users::list(&mut db).await? {
            user_ids.insert(u.id);
            users_exact.insert(u.username.clone(), u.id);
            users_by_name.insert(u.username.to_lowercase(), u.id);
            if !u.email.is_empty() {
                users_by_name.entry(u.email.to_lowercase()).or_insert(u.id);
            }
        }
        let stages = store::imports::stage_names(&mut db).await?;
        let mut plan = Plan {
            import_id: import.id,
            file_name: import.file_name.clone(),
            actor: import.created_by,
            columns: settings.columns.clone(),
            header_count: settings.header_count,
            options,
            users_exact,
            users_by_name,
            user_ids,
            stage_ids: HashSet::new(),
            stages_by_name: HashMap::new(),
        };
        plan.set_stages(stages);
        plan
    };
    {
        let mut tx = state.store.begin().await?;
        if ctx.checkpoint(&mut tx).await? == Control::LeaseLost {
            return Ok(Outcome::LeaseLost);
        }
        store::imports::set_run_started(&mut tx, import.id, now_ms(), import.offset_bytes).await?;
        tx.commit().await?;
    }
    let at = Position {
        offset: import.offset_bytes as u64,
        records: import.next_row as u64,
        lines: import.next_line as u64,
    };
    let mut batches = spawn_parser(
        path.clone(),
        settings.dialect,
        state.config.file.import.max_record_bytes,
        at,
        settings.header_count,
        state.config.file.import.batch_rows,
    );
    // Several batches share a transaction while nobody else waits for the writer: a
    // commit costs about what a batch's inserts do at a million contacts (every index page
    // a batch touches is written again), so fewer commits import faster. Each batch still
    // carries its own checkpoint, and a rollback only returns to the last commit.
    let shares_transactions = state.store.backend() == crate::store::Backend::Sqlite;
    let mut open: Option<Group> = None;
    loop {
        // Waiting for the parser and converting rows hold the writer only inside a
        // group, and a task that waits for it meanwhile ends the group first.
        let next = batches.recv().await;
        Group::end_for_waiting_writer(state, &mut open).await?;
        let Some(batch) = next else { break };
        let batch = batch.map_err(|e| anyhow::anyhow!("reading the uploaded file: {e}"))?;
        let batch = convert(&plan, batch);
        Group::end_for_waiting_writer(state, &mut open).await?;
        let (eof, rows) = (batch.eof, batch.rows);
        let mut group = match open.take() {
            Some(group) => group,
            None => Group {
                tx: state.store.begin().await?,
                since: Instant::now(),
                rows: 0,
            },
        };
        let control = write_batch(state, ctx, &mut plan, batch, &mut group.tx).await?;
        if control == Control::LeaseLost {
            return Ok(Outcome::LeaseLost); // another worker redoes what is not committed
        }
        group.rows += rows;
        let done = eof || control == Control::Stop || ctx.stopping() || ctx.lost();
        if done
            || !shares_transactions
            || group.rows >= GROUP_ROWS
            || group.since.elapsed() >= GROUP_TIME
            || state.store.writers_waiting() > 0
        {
            group.tx.commit().await?;
        } else {
            open = Some(group);
            continue;
        }
        match control {
            Control::Stop if !eof => return Ok(Outcome::Paused),
            _ => {}
        }
        if eof {
            // Done: the file is no longer needed (failed rows are in the database), and
            // an upload may be gigabytes.
            if let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::warn!(import = import.id, error = %e, "cannot remove the imported file");
            }
            return Ok(Outcome::Done);
        }
        if ctx.stopping() {
            return Ok(Outcome::Interrupted);
        }
        if ctx.lost() {
            return Ok(Outcome::LeaseLost);
        }
    }
    anyhow::bail!("the file reader stopped before the end of the file")
}

/// At most this many rows, or this long, in one transaction of several batches (SQLite
/// only: PostgreSQL commits cheaply and writes concurrently, and a transaction holding the
/// identifier locks of several batches, each set taken in order, could deadlock with an
/// API save taking some of them in the opposite order).
const GROUP_ROWS: usize = 20_000;
const GROUP_TIME: Duration = Duration::from_secs(1);

/// Batches written in one transaction, not committed yet.
struct Group {
    tx: Tx,
    since: Instant,
    rows: usize,
}

impl Group {
    /// Commits the open group, if any, when another task waits for the writer.
    async fn end_for_waiting_writer(
        state: &SharedState,
        open: &mut Option<Group>,
    ) -> anyhow::Result<()> {
        if state.store.writers_waiting() > 0
            && let Some(group) = open.take()
        {
            group.tx.commit().await?;
        }
        Ok(())
    }
}

/// A field mapped by this import was deleted while it ran or was paused: its column is no
/// longer imported, and a note on the import says so, instead of every remaining row
/// failing on a field that is gone.
async fn skip_deleted_fields(
    tx: &mut Tx,
    plan: &mut Plan,
    fields: &FieldSet,
    items: &mut [Item],
    now: i64,
) -> anyhow::Result<()> {
    let gone: Vec<(usize, String)> = plan
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            Target::Field(alias) if fields.get(alias).is_none() => Some((i, alias.clone())),
            _ => None,
        })
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    for (i, _) in &gone {
        plan.columns[*i] = Target::Skip;
    }
    // Rows converted before the field went still carry its values.
    for item in items.iter_mut() {
        item.input
            .values
            .retain(|(alias, _)| !gone.iter().any(|(_, g)| g == alias));
    }
    let Some(import) = store::imports::get(tx, plan.import_id).await? else {
        return Ok(());
    };
    let mut settings = Settings::from_json(&import.settings, None);
    for (i, alias) in &gone {
        settings.columns[*i] = Target::Skip;
        settings.notes.push(format!(
            "Column {i} ({}) is no longer imported from row {}: its field '{alias}' was deleted while the import ran.",
            settings.headers.get(*i).map_or("", String::as_str),
            import.next_row
        ));
    }
    store::imports::set_settings(tx, plan.import_id, &settings.to_json(), now).await?;
    Ok(())
}

/// Whether the start request's own `mapping` sends a column to `id`.
fn maps_id(body: &Map<String, Json>) -> bool {
    let is_id = |v: &Json| {
        v.as_str()
            .is_some_and(|s| Special::parse(s) == Some(Special::Id))
    };
    match body.get("mapping") {
        Some(Json::Array(a)) => a.iter().any(|e| e.get("field").is_some_and(is_id)),
        Some(Json::Object(o)) => o.values().any(is_id),
        _ => false,
    }
}

/// The tags of a cell, each with whether it takes the tag off (`-vip`, as in the API):
/// separated by `|`, or by commas when there is no `|` (as people type them). `\|`, `\,`
/// and `\\` are that character inside a tag, and `\-` a tag's own leading `-`
/// (`exports::join_tags` writes them).
fn split_tags(v: &str) -> Vec<(bool, String)> {
    const ESCAPED: [char; 4] = ['|', ',', '\\', '-'];
    let mut escaped = false;
    let has_pipe = v.chars().any(|c| {
        let pipe = c == '|' && !escaped;
        escaped = c == '\\' && !escaped;
        pipe
    });
    let separator = if has_pipe { '|' } else { ',' };
    // Segments with their escapes kept, so a leading `\-` is told from `-`.
    let mut segments = vec![String::new()];
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        let segment = segments.last_mut().expect("one");
        match c {
            '\\' if chars.peek().is_some_and(|n| ESCAPED.contains(n)) => {
                segment.push(c);
                segment.push(chars.next().expect("peeked"));
            }
            c if c == separator => segments.push(String::new()),
            c => segment.push(c),
        }
    }
    segments
        .iter()
        .map(|segment| {
            let segment = segment.trim();
            let (remove, name) = match segment.strip_prefix('-') {
                Some(rest) => (true, rest.trim_start()),
                None => (false, segment),
            };
            let mut tag = String::new();
            let mut chars = name.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek().is_some_and(|n| ESCAPED.contains(n)) => {
                        tag.push(chars.next().expect("peeked"))
                    }
                    c => tag.push(c),
                }
            }
            (remove, tag)
        })
        .collect()
}

/// Whether a cell clears its field (or owner, or stage): the text `NULL`, as in Mautic.
/// Exports write such a text as `'NULL` (`exports::needs_neutralizing`).
pub fn clears(cell: &str) -> bool {
    cell.trim() == "NULL"
}

/// A failed row's cell as the failed-rows file writes it: so that importing the file
/// again reads the value the cell gave (a `NULL` that clears stays one; an escaped
/// formula is not escaped twice), and no spreadsheet runs it as a formula.
pub fn failed_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    match clears(cell) {
        true => cell.into(),
        false => crate::exports::neutralize(unescape_formula(cell)),
    }
}

/// `'=1+1'` exported by Magpie as `'=1+1` comes back as `=1+1` (see `exports::neutralize`).
fn unescape_formula(v: &str) -> &str {
    match v.strip_prefix('\'') {
        Some(rest) if crate::exports::needs_neutralizing(rest) => rest,
        _ => v,
    }
}

/// Turns a row into an item (`None`: the row gives nothing to import), or says why it
/// cannot be imported.
fn to_item(
    plan: &Plan,
    row: i64,
    line: i64,
    values: Vec<String>,
) -> Result<Option<Item>, (String, Vec<String>)> {
    let fail = |m: String, values: &[String]| Err((m, values.to_vec()));
    if values.len() != plan.header_count {
        let extra_blank = values.len() > plan.header_count
            && values[plan.header_count..]
                .iter()
                .all(|v| v.trim().is_empty());
        if !extra_blank {
            return fail(
                format!(
                    "the row has {} values but the header has {} columns",
                    values.len(),
                    plan.header_count
                ),
                &values,
            );
        }
    }
    let mut item = Item {
        row,
        line,
        input: ContactInput::default(),
        id: None,
        date_added: None,
        date_identified: None,
        new_stage: None,
        values: Vec::new(),
    };
    // Whether an imported column has a value: a row whose only values are in columns not
    // imported is skipped, as Mautic ignores empty rows, rather than made an empty
    // contact (lines of blanks never get here: the reader drops them).
    let mut anything = false;
    for (i, target) in plan.columns.iter().enumerate() {
        let Some(raw) = values.get(i) else { continue };
        let v = unescape_formula(raw);
        if v.trim().is_empty() {
            continue; // empty cells never overwrite
        }
        anything |= !matches!(target, Target::Skip);
        // `NULL` clears (as in Mautic); `'NULL` (how exports write the text) is the text.
        if clears(raw) {
            match target {
                Target::Field(alias) => {
                    item.input.values.push((alias.clone(), Json::Null));
                    item.input.overwrite_with_blank = true;
                }
                Target::Special(Special::Owner) => item.input.owner = Some(None),
                Target::Special(Special::Stage) => item.input.stage = Some(None),
                // Tags, ids, dates and addresses have nothing to clear: no value.
                _ => {}
            }
            continue;
        }
        match target {
            Target::Skip => {}
            Target::Field(alias) => {
                item.input
                    .values
                    .push((alias.clone(), Json::String(v.to_owned())));
            }
            Target::Special(Special::Id) => match v.trim().parse::<i64>() {
                Ok(id) if id > 0 => item.id = Some(id),
                _ => {
                    return fail(
                        format!("id: '{}' is not a contact id", csv::clip(v)),
                        &values,
                    );
                }
            },
            Target::Special(Special::Tags) => {
                for (remove, name) in split_tags(v) {
                    let name = name.trim();
                    if name.is_empty() {
                        continue;
                    }
                    let list = if remove {
                        &mut item.input.tags.remove
                    } else {
                        &mut item.input.tags.add
                    };
                    match normalize_tag(name) {
                        Ok(t) => {
                            if !list.contains(&t) {
                                list.push(t);
                            }
                        }
                        Err(m) => return fail(format!("tags: {m}"), &values),
                    }
                }
            }
            Target::Special(Special::Owner) => {
                // A name first: Magpie's exports write usernames, and a username may be
                // a number. Then an id, then a username or email in any case.
                let key = v.trim();
                let id = plan
                    .users_exact
                    .get(key)
                    .copied()
                    .or_else(|| {
                        key.parse::<i64>()
                            .ok()
                            .filter(|id| plan.user_ids.contains(id))
                    })
                    .or_else(|| plan.users_by_name.get(&key.to_lowercase()).copied());
                match id {
                    Some(id) => item.input.owner = Some(Some(id)),
                    None => {
                        return fail(
                            format!(
                                "owner: '{}' is not a user (give a user id, username or email)",
                                csv::clip(key)
                            ),
                            &values,
                        );
                    }
                }
            }
            Target::Special(Special::Stage) => {
                // A name first (exports write names; a name may be a number), then the
                // id of a stage; anything else is a new stage of that name (an exported
                // stage named "123" comes back by its name).
                let key = v.trim();
                match (
                    plan.stages_by_name.get(&key.to_lowercase()),
                    key.parse::<i64>(),
                ) {
                    (Some(id), _) => item.input.stage = Some(Some(*id)),
                    (None, Ok(id)) if plan.stage_ids.contains(&id) => {
                        item.input.stage = Some(Some(id))
                    }
                    (None, _) => match crate::contacts::input::normalize_stage_name(key) {
                        Ok(name) => item.new_stage = Some(name),
                        Err(m) => return fail(format!("stage: {m}"), &values),
                    },
                }
            }
            Target::Special(s @ (Special::DateAdded | Special::DateIdentified)) => {
                match crate::time::parse_datetime(v) {
                    Some(t) if *s == Special::DateAdded => {
                        item.date_added = Some(t.timestamp_millis())
                    }
                    Some(t) => item.date_identified = Some(t.timestamp_millis()),
                    None => {
                        return fail(
                            format!(
                                "{}: '{}' is not a date like 2024-05-01 12:00:00",
                                s.as_str(),
                                csv::clip(v)
                            ),
                            &values,
                        );
                    }
                }
            }
            Target::Special(Special::IpAddress) => match v.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => item.input.ip_address = Some(ip.to_string()),
                Err(_) => {
                    return fail(
                        format!("ipAddress: '{}' is not an IP address", csv::clip(v)),
                        &values,
                    );
                }
            },
        }
    }
    if !anything {
        return Ok(None);
    }
    if item.input.owner.is_none()
        && let Some(o) = plan.options.owner
    {
        item.input.owner = Some(Some(o));
    }
    for t in &plan.options.tags {
        if !item.input.tags.add.contains(t) {
            item.input.tags.add.push(t.clone());
        }
    }
    item.values = values;
    Ok(Some(item))
}

/// A batch's rows turned into contact inputs (or failures), before the writer is taken.
struct Converted {
    items: Vec<Item>,
    failures: Vec<Failure>,
    /// Rows with nothing to import (skipped).
    empty: i64,
    rows: usize,
    end: Position,
    eof: bool,
}

fn convert(plan: &Plan, batch: Batch) -> Converted {
    let mut failures: Vec<Failure> = Vec::new();
    let rows = batch.records.len();
    let mut items: Vec<Item> = Vec::with_capacity(rows);
    let mut empty = 0;
    for r in batch.records {
        let (row, line) = (r.row as i64, r.line as i64);
        match r.fields {
            Err(bad) => failures.push(Failure {
                row,
                line,
                reason: bad.reason,
                values: bad.values,
            }),
            Ok(values) => match to_item(plan, row, line, values) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => empty += 1,
                Err((reason, values)) => failures.push(Failure {
                    row,
                    line,
                    reason,
                    values,
                }),
            },
        }
    }

    Converted {
        items,
        failures,
        empty,
        rows,
        end: batch.end,
        eof: batch.eof,
    }
}

/// Writes one converted batch in `tx` (not committed here): its contacts, events, failed
/// rows and checkpoint.
async fn write_batch(
    state: &SharedState,
    ctx: &JobCtx,
    plan: &mut Plan,
    batch: Converted,
    tx: &mut Tx,
) -> anyhow::Result<Control> {
    let now = now_ms();
    let Converted {
        mut items,
        mut failures,
        empty,
        rows,
        end,
        eof,
    } = batch;
    let mut counts = Counts {
        skipped: empty,
        ..Counts::default()
    };
    let total_rows = rows as i64;
    let control = ctx.checkpoint(tx).await?;
    if control == Control::LeaseLost {
        return Ok(Control::LeaseLost);
    }
    store::imports::tune_batch(tx).await?;
    let fields = state.fields(tx).await?;
    skip_deleted_fields(tx, plan, &fields, &mut items, now).await?;

    // Stages as they are now: one may have been renamed or deleted while the import ran.
    // The next batches convert with these; a row of this one whose stage is gone fails.
    let stages = store::imports::stage_names(tx).await?;
    plan.set_stages(stages);
    items.retain_mut(|item| match item.input.stage {
        Some(Some(id)) if !plan.stage_ids.contains(&id) => {
            failures.push(item.failure(format!("stage: there is no stage with id {id} any more")));
            false
        }
        _ => true,
    });

    // Stages named in rows that do not exist yet are created (as Mautic does); one stays
    // only if a row naming it is written (below).
    let mut new_stages: Vec<(String, i64)> = Vec::new();
    for item in &mut items {
        if let Some(name) = item.new_stage.take() {
            let id = match plan.stages_by_name.get(&name.to_lowercase()) {
                Some(id) => *id,
                None => {
                    let stage = store::stages::StageRow::named(name.clone(), now);
                    let id = store::stages::create(tx, &stage).await?;
                    plan.stages_by_name.insert(name.to_lowercase(), id);
                    plan.stage_ids.insert(id);
                    new_stages.push((name.to_lowercase(), id));
                    id
                }
            };
            item.input.stage = Some(Some(id));
        }
    }

    // Decide each row's target, or skip it. With `matchBy: id`, a row whose id names a
    // stored contact is that contact; every other row matches by the unique identifiers
    // (as Mautic does), so a row without an id never duplicates a stored email. Skipping
    // rows that match is the write path's `Insert`: it matches against stored contacts and
    // the rows of the batch written before, so a row that fails skips no later one.
    let by_identifiers = match plan.options.if_exists {
        IfExists::Update => SaveTarget::Upsert,
        IfExists::Skip => SaveTarget::Insert,
    };
    let mut targets: Vec<Option<SaveTarget>> = vec![Some(by_identifiers); items.len()];
    if plan.options.match_by == MatchBy::Id {
        let ids: Vec<i64> = items.iter().filter_map(|i| i.id).collect();
        let existing = store::imports::existing_contact_ids(tx, &ids).await?;
        for (i, item) in items.iter().enumerate() {
            if let Some(id) = item.id.filter(|id| existing.contains(id)) {
                targets[i] = match plan.options.if_exists {
                    IfExists::Update => Some(SaveTarget::Patch(id)),
                    IfExists::Skip => None,
                };
            }
        }
    }

    let mut to_save: Vec<(SaveTarget, ContactInput)> = Vec::with_capacity(items.len());
    let mut saved_items: Vec<&Item> = Vec::with_capacity(items.len());
    for (item, target) in items.iter_mut().zip(&targets) {
        if let Some(t) = target {
            to_save.push((*t, std::mem::take(&mut item.input)));
        }
    }
    let stage_of: Vec<Option<i64>> = to_save.iter().map(|(_, i)| i.stage.flatten()).collect();
    let mut stages_used: HashSet<i64> = HashSet::new();
    for (item, target) in items.iter().zip(&targets) {
        match target {
            None => counts.skipped += 1,
            Some(_) => saved_items.push(item),
        }
    }
    let save_ctx = SaveContext {
        fields: fields.clone(),
        operator: plan.options.operator,
        actor: plan.actor,
        source: Source::Import,
        now,
    };
    let results = service::save_in(tx, &save_ctx, to_save)
        .await
        .map_err(|e| anyhow::anyhow!("writing contacts: {e}"))?;
    let mut events = Vec::with_capacity(results.len());
    let mut dates = Vec::new();
    for ((item, result), stage) in saved_items.iter().zip(results).zip(stage_of) {
        match result {
            Ok(saved) if saved.skipped => counts.skipped += 1,
            Ok(saved) => {
                stages_used.extend(stage);
                if saved.created {
                    counts.created += 1;
                    if item.date_added.is_some() || item.date_identified.is_some() {
                        dates.push((saved.id, item.date_added, item.date_identified));
                    }
                } else {
                    counts.updated += 1;
                }
                events.push(
                    NewEvent::new(
                        saved.id,
                        keys::IMPORTED,
                        now,
                        json!({ "file": plan.file_name, "import": plan.import_id, "row": item.row, "action": if saved.created { "created" } else { "updated" } }),
                    )
                    .source(Source::Import.as_str())
                    .ref_id(plan.import_id),
                );
            }
            Err(e) => {
                let reason = match e {
                    AppError::NotFound(_) => format!(
                        "contact {} does not exist any more",
                        item.id.unwrap_or_default()
                    ),
                    AppError::Internal(e) => return Err(e),
                    other => other.to_string(),
                };
                failures.push(item.failure(reason));
            }
        }
    }
    for (name, id) in new_stages {
        if !stages_used.contains(&id) {
            // Only rows that failed or were skipped named it: a bad row leaves nothing.
            store::stages::delete(tx, id).await?;
            plan.stages_by_name.remove(&name);
            plan.stage_ids.remove(&id);
        }
    }
    counts.failed = failures.len() as i64;
    failures.sort_by_key(|f| f.row);
    store::events::insert(tx, &events).await?;
    store::imports::set_contact_dates(tx, &dates).await?;
    store::imports::insert_failures(tx, plan.import_id, &failures).await?;
    let checkpoint = Checkpoint {
        offset_bytes: end.offset as i64,
        next_row: end.records as i64,
        next_line: end.lines as i64,
        rows: total_rows,
        created: counts.created,
        updated: counts.updated,
        skipped: counts.skipped,
        failed: counts.failed,
    };
    store::imports::checkpoint(tx, plan.import_id, &checkpoint, now).await?;
    if eof {
        // Data rows: records after the header.
        store::imports::finish(tx, plan.import_id, (end.records as i64 - 1).max(0), now).await?;
    }
    Ok(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import_at(offset_bytes: i64, rows_done: i64) -> ImportRow {
        ImportRow {
            id: 1,
            job_id: Some(1),
            created_by: Some(1),
            file_name: "f.csv".into(),
            stored_name: "1.csv".into(),
            size_bytes: 1_000_000,
            line_count: 10_000,
            settings: json!({}),
            created_at: 0,
            updated_at: 0,
            started_at: Some(0),
            finished_at: None,
            offset_bytes,
            next_row: rows_done + 2,
            next_line: rows_done + 2,
            rows_done,
            created: rows_done,
            updated: 0,
            skipped: 0,
            failed: 0,
            run_started_at: Some(0),
            run_bytes_start: 200_000,
            total_rows: None,
        }
    }

    fn job(state: JobState) -> JobRow {
        JobRow {
            id: 1,
            kind: "import".into(),
            state,
            created_by: Some(1),
            created_at: 0,
            updated_at: 0,
            lease_owner: None,
            lease_until: None,
            attempts: 0,
            stop_requested: false,
            error: None,
        }
    }

    /// Tags an export joins come back the same, whatever they hold; `-x` in a cell
    /// people typed takes a tag off.
    #[test]
    fn tags_survive_join_and_split() {
        let cases: [&[&str]; 6] = [
            &["a", "b"],
            &["x,y"],
            &["a|b", "c\\d", "e"],
            &["-x", "-5", "a-b"],
            &["\\-", "-"],
            &["NULL"],
        ];
        for tags in cases {
            let cell = crate::exports::join_tags(tags);
            let back: Vec<(bool, String)> = split_tags(&cell);
            let want: Vec<(bool, String)> = tags.iter().map(|t| (false, t.to_string())).collect();
            assert_eq!(back, want, "{tags:?} as {cell:?}");
        }
        assert_eq!(
            split_tags("a, -b ,c"),
            [(false, "a".into()), (true, "b".into()), (false, "c".into())]
        );
        assert_eq!(
            split_tags("x|y,z"),
            [(false, "x".into()), (false, "y,z".into())]
        );
    }

    /// Rows per second and the ETA come from this run's bytes (a resumed run does not
    /// count what an earlier one did); the total is estimated from the line count until
    /// the end is reached.
    #[test]
    fn progress_rate_eta_and_totals() {
        // This run started at byte 200,000 and is at 600,000 after 10 s: 40,000 bytes/s;
        // 6,000 rows in 600,000 bytes: 400 rows/s; 400,000 bytes left: 10 s.
        let running = job(JobState::Running);
        let p = progress(&import_at(600_000, 6_000), Some(&running), 10_000);
        assert_eq!(p.rows_per_second, Some(400.0));
        assert_eq!(p.eta_seconds, Some(10));
        assert_eq!(p.percent, 60.0);
        assert_eq!((p.rows_total, p.rows_total_exact), (9_999, false));
        // Too early to say, or not running: no rate, no ETA.
        let early = progress(&import_at(600_000, 6_000), Some(&running), 300);
        assert_eq!((early.rows_per_second, early.eta_seconds), (None, None));
        let paused = progress(
            &import_at(600_000, 6_000),
            Some(&job(JobState::Paused)),
            10_000,
        );
        assert_eq!((paused.rows_per_second, paused.eta_seconds), (None, None));
        // Finished: the exact total, everything done.
        let mut done = import_at(1_000_000, 9_990);
        done.total_rows = Some(9_990);
        let p = progress(&done, Some(&job(JobState::Done)), 20_000);
        assert_eq!((p.rows_total, p.rows_total_exact), (9_990, true));
        assert_eq!((p.percent, p.bytes_done), (100.0, 1_000_000));
    }
}
