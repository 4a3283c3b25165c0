//! A streaming CSV reader over a file that survives bad input.
//!
//! It runs `csv-core`'s state machine on the raw bytes (delimiters, quotes and line
//! breaks are ASCII in UTF-8 and in Windows-1252 alike) and decodes each field
//! afterwards, so byte offsets are file offsets: a checkpoint is an offset, and a resumed
//! import seeks there. Memory is bounded: a record longer than `max_record` bytes is not
//! kept; the reader skips it and reports that row as failed.
//!
//! Recovery from broken quoting: a quoted field that is never closed would swallow the
//! rest of the file. When a record ran to the end of the file inside quotes, or spans
//! several lines and has the wrong number of fields, only its first line is reported as
//! failed and reading resumes on the next line.

use std::io::{self, BufRead, Seek, SeekFrom};

use csv_core::{ReadRecordResult, ReaderBuilder};

/// Text encodings an import file may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// Windows-1252 (a superset of Latin-1 for printable characters).
    Windows1252,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1252 => "windows-1252",
        }
    }
    pub fn parse(s: &str) -> Option<Encoding> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "windows-1252" | "cp1252" | "latin-1" | "latin1" | "iso-8859-1" | "iso-8859-15" => {
                Some(Encoding::Windows1252)
            }
            _ => None,
        }
    }
}

/// How a file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    pub encoding: Encoding,
    /// The file starts with a UTF-8 byte order mark (skipped).
    pub bom: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            delimiter: b',',
            quote: b'"',
            encoding: Encoding::Utf8,
            bom: false,
        }
    }
}

/// Where reading (re)starts: a byte offset at a record boundary and the numbers of the
/// record and line found there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    /// Records read before this point (the header is record 1).
    pub records: u64,
    /// Line breaks before this point.
    pub lines: u64,
}

/// One record, or why it could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// 1-based record number: the header is row 1, the first data row is row 2.
    pub row: u64,
    /// 1-based line on which the record starts.
    pub line: u64,
    pub fields: Result<Vec<String>, Bad>,
}

/// A record that could not be read: the reason and what could be seen of it (clipped).
#[derive(Clone, Debug, PartialEq)]
pub struct Bad {
    pub reason: String,
    pub values: Vec<String>,
}

/// Most fields a record may have.
pub const MAX_FIELDS: usize = 4096;
/// Longest text kept of a bad record's value (characters), for the failed-rows file.
pub const CLIP: usize = 1000;

pub fn clip(s: &str) -> String {
    if s.chars().count() > CLIP {
        format!("{}…", s.chars().take(CLIP).collect::<String>())
    } else {
        s.to_owned()
    }
}

pub struct CsvReader<R> {
    input: R,
    /// The byte that ends lines: `\n`, or `\r` in files whose lines end with CR alone
    /// (old Mac spreadsheets). Line numbers and the recovery from broken quotes count it.
    line_break: u8,
    dialect: Dialect,
    core: csv_core::Reader,
    pos: Position,
    max_record: usize,
    out: Vec<u8>,
    ends: Vec<usize>,
    scratch: Vec<u8>,
    scratch_ends: Vec<usize>,
    /// The number of fields a record should have (set once the header is known).
    pub expected_fields: Option<usize>,
    finished: bool,
}

fn core_reader(d: &Dialect) -> csv_core::Reader {
    ReaderBuilder::new()
        .delimiter(d.delimiter)
        .quote(d.quote)
        .double_quote(true)
        .build()
}

/// `\r` when the first line of `head` ends with CR alone, else `\n`.
fn line_break(head: &[u8]) -> u8 {
    match memchr::memchr2(b'\n', b'\r', head) {
        Some(at) if head[at] == b'\r' && head.get(at + 1).is_some_and(|b| *b != b'\n') => b'\r',
        _ => b'\n',
    }
}

impl<R: BufRead + Seek> CsvReader<R> {
    /// A reader positioned at `at` (offset 0 means the start of the file: a byte order
    /// mark is skipped).
    pub fn new(
        mut input: R,
        dialect: Dialect,
        max_record: usize,
        at: Position,
    ) -> io::Result<CsvReader<R>> {
        let mut at = at;
        if at.offset == 0 && dialect.bom {
            at.offset = 3;
        }
        // Lines end as the file's first line (the header) ends, wherever this run starts.
        input.seek(SeekFrom::Start(if dialect.bom { 3 } else { 0 }))?;
        let line_break = line_break(input.fill_buf()?);
        input.seek(SeekFrom::Start(at.offset))?;
        Ok(CsvReader {
            input,
            line_break,
            dialect,
            core: core_reader(&dialect),
            pos: at,
            max_record,
            out: vec![0; 4096.min(max_record)],
            ends: vec![0; 64],
            scratch: vec![0; 64 * 1024],
            scratch_ends: vec![0; 256],
            expected_fields: None,
            finished: false,
        })
    }

    /// Where the next record starts.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// The next record with any content; `None` at the end of the file.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        loop {
            match self.read_one()? {
                None => return Ok(None),
                Some(r) => {
                    if let Ok(fields) = &r.fields
                        && fields.iter().all(|f| f.trim().is_empty())
                    {
                        // A line of blanks (or separators only) is no row at all.
                        self.pos.records -= 1;
                        continue;
                    }
                    return Ok(Some(r));
                }
            }
        }
    }

    fn read_one(&mut self) -> io::Result<Option<Record>> {
        if self.finished {
            return Ok(None);
        }
        let quote = self.dialect.quote;
        let mut out_len = 0usize;
        let mut nends = 0usize;
        let mut overflow: Option<&'static str> = None;
        // Where the record's content starts (after line breaks left by the previous one).
        let mut content_start: Option<(u64, u64)> = None; // (offset, lines before it)
        let mut first_inner_break: Option<u64> = None;
        let mut inner_breaks = 0u64;
        let mut quotes = 0u64;
        let mut consumed_any = false;
        let at_end;
        loop {
            let buf = self.input.fill_buf()?;
            let eof = buf.is_empty();
            let (res, nin, nout, nend) = if overflow.is_some() {
                let (r, i, _, _) =
                    self.core
                        .read_record(buf, &mut self.scratch, &mut self.scratch_ends);
                (r, i, 0, 0)
            } else {
                self.core
                    .read_record(buf, &mut self.out[out_len..], &mut self.ends[nends..])
            };
            // Account for the bytes the state machine consumed.
            for (i, &b) in buf[..nin].iter().enumerate() {
                let offset = self.pos.offset + i as u64;
                if content_start.is_none() {
                    if b == self.line_break {
                        self.pos.lines += 1;
                        continue;
                    }
                    if b == b'\r' || b == b'\n' {
                        continue;
                    }
                    content_start = Some((offset, self.pos.lines));
                }
                if b == self.line_break {
                    inner_breaks += 1;
                    if first_inner_break.is_none() {
                        first_inner_break = Some(offset);
                    }
                } else if b == quote {
                    quotes += 1;
                }
            }
            if nin > 0 {
                consumed_any = true;
            }
            self.input.consume(nin);
            self.pos.offset += nin as u64;
            out_len += nout;
            nends += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    if eof {
                        // csv-core asks for more after the final record only when it has
                        // nothing pending; treat as the end.
                        at_end = true;
                        break;
                    }
                }
                ReadRecordResult::OutputFull => {
                    if self.out.len() < self.max_record {
                        let grown = (self.out.len() * 2).min(self.max_record);
                        self.out.resize(grown, 0);
                    } else {
                        overflow = Some("too long");
                    }
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() < MAX_FIELDS {
                        let grown = (self.ends.len() * 2).min(MAX_FIELDS);
                        self.ends.resize(grown, 0);
                    } else {
                        overflow = Some("too many fields");
                    }
                }
                ReadRecordResult::Record => {
                    at_end = eof;
                    break;
                }
                ReadRecordResult::End => {
                    self.finished = true;
                    return Ok(None);
                }
            }
        }
        let Some((start, lines_before)) = content_start else {
            // Only line breaks were left.
            if at_end || !consumed_any {
                self.finished = true;
            }
            return Ok(None);
        };
        self.pos.records += 1;
        let row = self.pos.records;
        let line = lines_before + 1;
        // The line breaks inside the record (the one ending it included) move the count.
        self.pos.lines = lines_before + inner_breaks;

        // Broken quoting: resume on the line after the record's first line.
        let unterminated = at_end && quotes % 2 == 1 && first_inner_break.is_some();
        // A value legitimately running over lines is quoted with an even number of
        // quotes, and its row has the header's number of fields.
        let misshapen = first_inner_break.is_some_and(|b| b + 1 < self.pos.offset)
            && quotes > 0
            && overflow.is_none()
            && (quotes % 2 == 1 || self.expected_fields.is_some_and(|n| n != nends));
        // A quote opened on the last line swallowed its delimiters (a quote inside an
        // unquoted value is only a character, and its row keeps its fields).
        if at_end
            && quotes % 2 == 1
            && first_inner_break.is_none()
            && overflow.is_none()
            && self.expected_fields.is_some_and(|n| n != nends)
        {
            let text = self.read_span(start, self.pos.offset)?;
            self.finished = true;
            return Ok(Some(Record {
                row,
                line,
                fields: Err(Bad {
                    reason: format!("a quoted value opened on line {line} is never closed"),
                    values: vec![text],
                }),
            }));
        }
        if unterminated
            || misshapen
            || (overflow.is_some() && quotes % 2 == 1 && first_inner_break.is_some())
        {
            let first_break = first_inner_break.expect("checked");
            let first_line = self.read_span(start, first_break)?;
            let reason = if unterminated || overflow.is_some() {
                format!(
                    "a quoted value opened on line {line} is never closed (the rest of the file would be inside it)"
                )
            } else {
                format!(
                    "a quote on line {line} opens a value that runs over the following lines; check the quotes on this line"
                )
            };
            self.seek_to(first_break + 1, lines_before + 1)?;
            return Ok(Some(Record {
                row,
                line,
                fields: Err(Bad {
                    reason,
                    values: vec![first_line],
                }),
            }));
        }
        if let Some(what) = overflow {
            let seen =
                String::from_utf8_lossy(&self.out[..self.out.len().min(CLIP * 4)]).into_owned();
            let reason = if what == "too long" {
                format!(
                    "the row is longer than {} bytes (the import's limit)",
                    self.max_record
                )
            } else {
                format!("the row has more than {MAX_FIELDS} values")
            };
            return Ok(Some(Record {
                row,
                line,
                fields: Err(Bad {
                    reason,
                    values: vec![clip(&seen)],
                }),
            }));
        }
        Ok(Some(Record {
            row,
            line,
            fields: self.decode(nends),
        }))
    }

    /// Decodes the fields held in `out`.
    fn decode(&self, nends: usize) -> Result<Vec<String>, Bad> {
        let mut fields = Vec::with_capacity(nends);
        let mut start = 0;
        let mut problem: Option<String> = None;
        for (i, &end) in self.ends[..nends].iter().enumerate() {
            let bytes = &self.out[start..end];
            start = end;
            if bytes.contains(&0) && problem.is_none() {
                problem = Some(format!(
                    "column {} contains binary data (NUL bytes); this is not text",
                    i + 1
                ));
            }
            let text = match self.dialect.encoding {
                Encoding::Utf8 => match std::str::from_utf8(bytes) {
                    Ok(s) => s.to_owned(),
                    // A Windows-1252 file whose first accent comes after the sniffed
                    // sample, or a stray byte: nothing fails or is lost.
                    Err(_) => crate::legacy_text::utf8_else_windows_1252(bytes),
                },
                Encoding::Windows1252 => crate::legacy_text::windows_1252(bytes),
            };
            fields.push(text);
        }
        match problem {
            None => Ok(fields),
            Some(reason) => Err(Bad {
                reason,
                values: fields
                    .iter()
                    .map(|f| clip(&f.replace('\0', "\u{FFFD}")))
                    .collect(),
            }),
        }
    }

    /// The bytes from `from` to `to` (exclusive, at most 4 KiB), as lossy text.
    fn read_span(&mut self, from: u64, to: u64) -> io::Result<String> {
        let len = (to.saturating_sub(from)).min(4096) as usize;
        self.input.seek(SeekFrom::Start(from))?;
        let mut buf = vec![0; len];
        let mut read = 0;
        while read < len {
            let n = io::Read::read(&mut self.input, &mut buf[read..])?;
            if n == 0 {
                break;
            }
            read += n;
        }
        buf.truncate(read);
        let s = match self.dialect.encoding {
            Encoding::Utf8 => String::from_utf8_lossy(&buf).into_owned(),
            Encoding::Windows1252 => crate::legacy_text::windows_1252(&buf),
        };
        Ok(clip(s.trim_end_matches('\r')))
    }

    fn seek_to(&mut self, offset: u64, lines: u64) -> io::Result<()> {
        self.input.seek(SeekFrom::Start(offset))?;
        self.pos.offset = offset;
        self.pos.lines = lines;
        self.core = core_reader(&self.dialect);
        self.finished = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read_all(data: &[u8], dialect: Dialect, max: usize, expected: Option<usize>) -> Vec<Record> {
        let mut r = CsvReader::new(
            Cursor::new(data.to_vec()),
            dialect,
            max,
            Position::default(),
        )
        .unwrap();
        r.expected_fields = expected;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec);
        }
        out
    }

    fn ok(r: &Record) -> Vec<&str> {
        r.fields
            .as_ref()
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn reads_quoted_multiline_and_crlf() {
        let data = b"a,b\r\n1,\"x, \"\"y\"\"\"\r\n\r\n2,\"line1\nline2\"\r\n3,z";
        let recs = read_all(data, Dialect::default(), 1 << 20, Some(2));
        assert_eq!(recs.len(), 4);
        assert_eq!(ok(&recs[1]), vec!["1", "x, \"y\""]);
        assert_eq!((recs[2].row, recs[2].line), (3, 4));
        assert_eq!(ok(&recs[2]), vec!["2", "line1\nline2"]);
        assert_eq!((recs[3].row, recs[3].line), (4, 6));
        assert_eq!(ok(&recs[3]), vec!["3", "z"]);
    }

    #[test]
    fn long_records_fail_alone_and_memory_stays_bounded() {
        let mut data = b"a,b\n1,2\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 200_000));
        data.extend(b"\n3,4\n");
        let recs = read_all(&data, Dialect::default(), 4096, Some(2));
        assert_eq!(recs.len(), 4);
        let bad = recs[2].fields.as_ref().unwrap_err();
        assert!(
            bad.reason.contains("longer than 4096 bytes"),
            "{}",
            bad.reason
        );
        assert_eq!(recs[2].line, 3);
        assert_eq!(ok(&recs[3]), vec!["3", "4"]);
        assert_eq!(recs[3].line, 4);
    }

    #[test]
    fn an_unterminated_quote_skips_one_line_only() {
        let data = b"a,b\n1,\"oops\n2,fine\n3,also fine\n";
        let recs = read_all(data, Dialect::default(), 1 << 20, Some(2));
        let rows: Vec<_> = recs
            .iter()
            .map(|r| (r.row, r.line, r.fields.is_ok()))
            .collect();
        assert_eq!(
            rows,
            vec![(1, 1, true), (2, 2, false), (3, 3, true), (4, 4, true)],
            "{recs:?}"
        );
        assert!(
            recs[1]
                .fields
                .as_ref()
                .unwrap_err()
                .reason
                .contains("never closed")
        );
        assert_eq!(ok(&recs[3]), vec!["3", "also fine"]);
    }

    #[test]
    fn an_unclosed_quote_on_the_last_line_says_so() {
        let recs = read_all(
            b"a,b,c\n1,2,3\n4,\"x,y",
            Dialect::default(),
            1 << 20,
            Some(3),
        );
        assert_eq!(recs.len(), 3, "{recs:?}");
        let bad = recs[2].fields.as_ref().unwrap_err();
        assert!(bad.reason.contains("never closed"), "{bad:?}");
        assert_eq!(bad.values, ["4,\"x,y"]);
        let recs = read_all(b"a,b\n1,x\"y", Dialect::default(), 1 << 20, Some(2));
        assert_eq!(
            ok(&recs[1]),
            vec!["1", "x\"y"],
            "a quote inside a value is text"
        );
    }

    /// Lines that end with CR alone (old Mac spreadsheets): numbered, and an unclosed
    /// quote skips its line only, as with LF.
    #[test]
    fn lines_ending_with_cr_alone() {
        let data = b"a,b\r1,\"oops\r2,fine\r\r3,also fine\r";
        let recs = read_all(data, Dialect::default(), 1 << 20, Some(2));
        let rows: Vec<_> = recs
            .iter()
            .map(|r| (r.row, r.line, r.fields.is_ok()))
            .collect();
        assert_eq!(
            rows,
            vec![(1, 1, true), (2, 2, false), (3, 3, true), (4, 5, true)],
            "{recs:?}"
        );
        assert_eq!(ok(&recs[2]), vec!["2", "fine"]);
        assert_eq!(ok(&recs[3]), vec!["3", "also fine"]);
        assert_eq!(line_break(b"a,b\r\n1,2"), b'\n');
        assert_eq!(line_break(b"a,b\n1,\"x\ry\""), b'\n');
    }

    #[test]
    fn a_stray_quote_that_closes_later_is_contained() {
        let data = b"a,b,c\n1,\"x,y\n2,b,c\n3,\"q\",r\n4,b,c\n";
        let recs = read_all(data, Dialect::default(), 1 << 20, Some(3));
        let good: Vec<_> = recs
            .iter()
            .filter_map(|r| r.fields.as_ref().ok().map(|f| f[0].clone()))
            .collect();
        assert_eq!(good, vec!["a", "2", "3", "4"], "{recs:?}");
        assert!(recs[1].fields.is_err());
    }

    #[test]
    fn encodings_and_binary() {
        let d = Dialect {
            encoding: Encoding::Windows1252,
            ..Dialect::default()
        };
        let recs = read_all(b"name\nJos\xe9\n", d, 1 << 20, None);
        assert_eq!(ok(&recs[1]), vec!["José"]);
        // Read as UTF-8, a byte UTF-8 cannot read is its Windows-1252 character, beside
        // well-formed UTF-8 in the same value.
        let recs = read_all(
            b"name\nJos\xe9\nZo\xc3\xab \x80\nok\n",
            Dialect::default(),
            1 << 20,
            None,
        );
        assert_eq!(ok(&recs[1]), vec!["José"]);
        assert_eq!(ok(&recs[2]), vec!["Zoë €"]);
        assert_eq!(ok(&recs[3]), vec!["ok"]);
        let recs = read_all(b"name\nab\0cd\n", Dialect::default(), 1 << 20, None);
        assert!(
            recs[1]
                .fields
                .as_ref()
                .unwrap_err()
                .reason
                .contains("binary")
        );
        let bom = Dialect {
            bom: true,
            ..Dialect::default()
        };
        let recs = read_all(b"\xef\xbb\xbfemail\na@b.co\n", bom, 1 << 20, None);
        assert_eq!(ok(&recs[0]), vec!["email"]);
    }

    #[test]
    fn resumes_from_a_position() {
        let data = b"a,b\n1,2\n3,4\n5,6\n";
        let mut r = CsvReader::new(
            Cursor::new(data.to_vec()),
            Dialect::default(),
            1 << 20,
            Position::default(),
        )
        .unwrap();
        r.next_record().unwrap();
        r.next_record().unwrap();
        let at = r.position();
        let mut r =
            CsvReader::new(Cursor::new(data.to_vec()), Dialect::default(), 1 << 20, at).unwrap();
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!((rec.row, rec.line), (3, 3));
        assert_eq!(ok(&rec), vec!["3", "4"]);
    }
}
