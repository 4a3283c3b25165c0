//! The SQLite fast path of exports: SQLite builds each page as one text
//! (`store::exports::lines`: the rows' values joined with control characters), so sqlx
//! decodes one value per page instead of one per cell, and the writer thread reads the
//! cells straight out of that text. What it writes is exactly what the cells of
//! `Reader::cells` would give; a page it cannot read with certainty (a value holding a
//! separator, an integer column holding something else) is read again the usual way.

use std::collections::HashMap;

use super::{Cell, CellRef};
use crate::contacts::fields::{FieldSet, Storage};
use crate::store::exports::{FIELD_SEP, ROW_SEP, is_numeric_column};

/// What a field's text in a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    /// A text column's value (NULL and '' both empty: cells that write the same).
    Text,
    /// Integer points.
    Points,
    /// Milliseconds (or empty), shown as a datetime.
    Timestamp,
    /// Always empty in the line: the value is the `n`th of the page's `numbers`.
    Numeric(usize),
}

/// How to read the lines of a field set, and the names of owners and stages.
pub(super) struct Layout {
    cols: Vec<Col>,
    pub(super) users: HashMap<i64, String>,
    pub(super) stages: HashMap<i64, String>,
}

/// Fields of a line after the field set's: owner, stage, and the three dates.
const TAIL: usize = 5;

impl Layout {
    pub(super) fn new(
        fields: &FieldSet,
        users: HashMap<i64, String>,
        stages: HashMap<i64, String>,
    ) -> Layout {
        let mut numeric = 0;
        let cols = fields
            .iter()
            .map(|f| {
                if is_numeric_column(f) {
                    numeric += 1;
                    Col::Numeric(numeric - 1)
                } else {
                    match f.storage() {
                        Storage::Column => Col::Text,
                        Storage::Points => Col::Points,
                        Storage::Timestamp => Col::Timestamp,
                    }
                }
            })
            .collect();
        Layout {
            cols,
            users,
            stages,
        }
    }

    /// Fields in a line: the id, the field set's, the tail.
    fn width(&self) -> usize {
        1 + self.cols.len() + TAIL
    }

    pub(super) fn name(map: &HashMap<i64, String>, id: Option<i64>) -> Option<&str> {
        id.and_then(|id| map.get(&id)).map(String::as_str)
    }
}

/// A page read as lines, checked: every row has its fields where they belong.
pub(super) struct LinePage {
    text: String,
    /// Start and end of each field in `text`, row after row.
    spans: Vec<(u32, u32)>,
    /// The rows' ids, ascending.
    pub(super) ids: Vec<i64>,
    /// Tags joined with `|`, of the rows that have some.
    pub(super) tags: HashMap<i64, String>,
    /// The numeric fields' cells (in field set order), of the rows that have some.
    pub(super) numbers: HashMap<i64, Vec<Cell>>,
}

/// An optional integer: empty is `None`; anything but a plain integer fails.
fn int(s: &str) -> Result<Option<i64>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(drop)
}

impl LinePage {
    /// Splits `text` (`rows` lines in id order, every id above `after`) and checks every
    /// field the writer will parse. `None`: read this page the usual way.
    pub(super) fn split(
        layout: &Layout,
        text: String,
        rows: usize,
        after: i64,
    ) -> Option<LinePage> {
        let width = layout.width();
        if text.len() > u32::MAX as usize || (rows == 0 && !text.is_empty()) {
            return None;
        }
        let mut spans = Vec::with_capacity(rows * width);
        let mut ids = Vec::with_capacity(rows);
        let mut last = after;
        let bytes = text.as_bytes();
        let mut start = 0;
        for _ in 0..rows {
            if start > bytes.len() {
                return None; // fewer rows than counted
            }
            let end = memchr::memchr(ROW_SEP, &bytes[start..]).map_or(bytes.len(), |i| start + i);
            let first = spans.len();
            let mut f = start;
            for sep in memchr::memchr_iter(FIELD_SEP, &bytes[start..end]) {
                spans.push((f as u32, (start + sep) as u32));
                f = start + sep + 1;
            }
            spans.push((f as u32, end as u32));
            if spans.len() - first != width {
                return None;
            }
            let field = |i: usize| {
                let (a, b) = spans[first + i];
                &text[a as usize..b as usize]
            };
            let id = int(field(0)).ok()??;
            if id <= last {
                return None;
            }
            last = id;
            ids.push(id);
            for (i, col) in layout.cols.iter().enumerate() {
                let v = field(1 + i);
                let ok = match col {
                    Col::Text => true,
                    Col::Points => int(v).ok().flatten().is_some(),
                    Col::Timestamp => int(v).is_ok(),
                    Col::Numeric(_) => v.is_empty(),
                };
                if !ok {
                    return None;
                }
            }
            for i in 0..TAIL {
                int(field(1 + layout.cols.len() + i)).ok()?;
            }
            start = end + 1;
        }
        // Every separator is accounted for: a value holding one would have made a row
        // too many here, or a field too many above.
        if rows > 0 && start != bytes.len() + 1 {
            return None;
        }
        Some(LinePage {
            text,
            spans,
            ids,
            tags: HashMap::new(),
            numbers: HashMap::new(),
        })
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The cells of row `r`, in the order of `headers`, into `out`.
    pub(super) fn cells<'a>(&'a self, layout: &'a Layout, r: usize, out: &mut Vec<CellRef<'a>>) {
        out.clear();
        let width = layout.width();
        let row = &self.spans[r * width..(r + 1) * width];
        let field = |i: usize| {
            let (a, b) = row[i];
            &self.text[a as usize..b as usize]
        };
        // Checked by `split`.
        let int = |i: usize| int(field(i)).ok().flatten();
        let id = self.ids[r];
        out.push(CellRef::Int(id));
        let numbers = self.numbers.get(&id);
        for (i, col) in layout.cols.iter().enumerate() {
            out.push(match col {
                Col::Text => CellRef::Text(field(1 + i)),
                Col::Points => int(1 + i).map_or(CellRef::Empty, CellRef::Int),
                Col::Timestamp => int(1 + i).map_or(CellRef::Empty, CellRef::Date),
                Col::Numeric(n) => numbers
                    .and_then(|v| v.get(*n))
                    .map_or(CellRef::Empty, Cell::as_ref),
            });
        }
        out.push(
            self.tags
                .get(&id)
                .map_or(CellRef::Empty, |t| CellRef::Text(t)),
        );
        let tail = 1 + layout.cols.len();
        let name = |map, i| Layout::name(map, int(i)).map_or(CellRef::Empty, CellRef::Text);
        out.push(name(&layout.users, tail));
        out.push(name(&layout.stages, tail + 1));
        for i in 2..TAIL {
            out.push(int(tail + i).map_or(CellRef::Empty, CellRef::Date));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let users = HashMap::from([(1, "admin".to_owned())]);
        let stages = HashMap::from([(2, "=Lead".to_owned())]);
        Layout::new(&FieldSet::defaults_for_tests(), users, stages)
    }

    /// A line as SQLite builds it: `values` by field alias, the rest empty.
    fn line(layout: &Layout, id: i64, values: &[(&str, &str)], tail: [&str; TAIL]) -> String {
        let fields = FieldSet::defaults_for_tests();
        let mut out = vec![id.to_string()];
        for (f, col) in fields.iter().zip(&layout.cols) {
            let v = values.iter().find(|(a, _)| *a == f.alias).map(|(_, v)| *v);
            out.push(match (col, v) {
                (Col::Numeric(_), _) => String::new(),
                (Col::Points, None) => "0".to_owned(),
                (_, v) => v.unwrap_or("").to_owned(),
            });
        }
        out.extend(tail.map(str::to_owned));
        out.join("\u{1f}")
    }

    const DATES: [&str; TAIL] = ["1", "2", "1714564800000", "1714564800999", ""];

    #[test]
    fn reads_the_cells_of_lines() {
        let l = layout();
        let text = [
            line(
                &l,
                5,
                &[("firstname", "=Ann, \"x\""), ("points", "-3")],
                DATES,
            ),
            line(&l, 9, &[("last_active", "-1")], ["", "", "0", "0", ""]),
        ]
        .join("\u{1e}");
        let page = LinePage::split(&l, text, 2, 0).expect("a good page");
        let headers = super::super::headers(&FieldSet::defaults_for_tests());
        let mut cells = Vec::new();
        page.cells(&l, 0, &mut cells);
        fn cell<'a>(headers: &[String], cells: &[CellRef<'a>], h: &str) -> CellRef<'a> {
            cells[headers.iter().position(|x| x == h).unwrap()]
        }
        assert_eq!(cells.len(), headers.len());
        assert_eq!(cell(&headers, &cells, "id"), CellRef::Int(5));
        assert_eq!(
            cell(&headers, &cells, "firstname"),
            CellRef::Text("=Ann, \"x\"")
        );
        assert_eq!(cell(&headers, &cells, "points"), CellRef::Int(-3));
        assert_eq!(cell(&headers, &cells, "owner"), CellRef::Text("admin"));
        assert_eq!(cell(&headers, &cells, "stage"), CellRef::Text("=Lead"));
        assert_eq!(
            cell(&headers, &cells, "date_added"),
            CellRef::Date(1_714_564_800_000)
        );
        assert_eq!(cell(&headers, &cells, "date_identified"), CellRef::Empty);
        assert_eq!(cell(&headers, &cells, "tags"), CellRef::Empty);
        assert_eq!(cell(&headers, &cells, "attribution"), CellRef::Empty);
        page.cells(&l, 1, &mut cells);
        assert_eq!(cell(&headers, &cells, "last_active"), CellRef::Date(-1));
        assert_eq!(cell(&headers, &cells, "owner"), CellRef::Empty);
        assert_eq!(cell(&headers, &cells, "firstname"), CellRef::Text(""));
    }

    #[test]
    fn declines_what_it_cannot_read_with_certainty() {
        let l = layout();
        let ok = |id| line(&l, id, &[], DATES);
        let split = |rows: &[String], n| LinePage::split(&l, rows.join("\u{1e}"), n, 0).is_some();
        assert!(split(&[ok(1), ok(2)], 2));
        assert!(split(&[], 0));
        // A separator inside a value: a field or a row too many.
        assert!(!split(&[line(&l, 1, &[("city", "a\u{1f}b")], DATES)], 1));
        assert!(!split(
            &[line(&l, 1, &[("city", "a\u{1e}b")], DATES), ok(2)],
            2
        ));
        // Rows counted and rows found disagree (as when a value holds a row separator
        // and a whole well-formed row after it).
        assert!(!split(&[ok(1), ok(2)], 1));
        assert!(!split(&[ok(1)], 2));
        assert!(!split(&[ok(1)], 0));
        // Ids out of order, or not above the last page's.
        assert!(!split(&[ok(2), ok(1)], 2));
        assert!(!split(&[ok(2), ok(2)], 2));
        assert!(LinePage::split(&l, ok(3), 1, 3).is_none());
        // Integer columns holding anything else (SQLite's text for a REAL, say).
        assert!(!split(&[line(&l, 1, &[("points", "2.5")], DATES)], 1));
        assert!(!split(&[line(&l, 1, &[("points", "")], DATES)], 1));
        assert!(!split(
            &[line(&l, 1, &[("last_active", "1.0e+12")], DATES)],
            1
        ));
        assert!(!split(&[line(&l, 1, &[], ["x", "", "1", "1", ""])], 1));
        assert!(!split(&[line(&l, 1, &[], ["", "", "1", "1", "1.5"])], 1));
        // A numeric field's place in the line is always empty.
        let mut numeric = line(&l, 1, &[], DATES);
        let at = l
            .cols
            .iter()
            .position(|c| matches!(c, Col::Numeric(_)))
            .unwrap()
            + 1;
        let mut fields: Vec<&str> = numeric.split('\u{1f}').collect();
        fields[at] = "1";
        numeric = fields.join("\u{1f}");
        assert!(!split(&[numeric], 1));
    }
}
