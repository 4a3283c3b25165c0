//! The search, filters, order and page of the simple entity lists of Mautic's API (tags,
//! stages, notes, companies, fields): `search` is free text or `ids:1,2,3` (and an
//! entity's own commands, `take_commands`), `where` filters and `orderBy` name the
//! entity's columns, `published=1` keeps published ones.

use super::contact_search::{Col, WhereFilter, where_sql};
use super::db::{Backend, Kind, Params};

/// A column of an entity list that `orderBy` and `where` may name.
#[derive(Clone, Copy, Debug)]
pub struct ListColumn {
    /// The name the API uses.
    pub name: &'static str,
    pub sql: &'static str,
    pub kind: Kind,
    /// Milliseconds since the epoch, compared with written dates.
    pub timestamp: bool,
}

impl ListColumn {
    pub const fn text(name: &'static str, sql: &'static str) -> ListColumn {
        ListColumn {
            name,
            sql,
            kind: Kind::Text,
            timestamp: false,
        }
    }
    pub const fn int(name: &'static str, sql: &'static str) -> ListColumn {
        ListColumn {
            name,
            sql,
            kind: Kind::Int,
            timestamp: false,
        }
    }
    pub const fn time(name: &'static str, sql: &'static str) -> ListColumn {
        ListColumn {
            name,
            sql,
            kind: Kind::Int,
            timestamp: true,
        }
    }
}

/// The column `name` names among `columns` (case-insensitive, as Mautic's MySQL is).
pub fn find_column(columns: &[ListColumn], name: &str) -> Option<ListColumn> {
    columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .copied()
}

/// Checks `wheres` against `columns` and returns their SQL and parameters; `Err` is the
/// message of a 400.
pub fn where_conditions(
    backend: Backend,
    p: &mut Params,
    columns: &[ListColumn],
    wheres: &[WhereFilter],
) -> Result<Vec<String>, String> {
    let resolve = |name: &str| {
        // Mautic's clients may name a column with its table's alias (`comp.id`, `f.label`).
        let name = name.rsplit_once('.').map_or(name, |(_, n)| n);
        find_column(columns, name).map(|c| Col {
            sql: c.sql.to_owned(),
            kind: c.kind,
            timestamp: c.timestamp,
            dated: None,
        })
    };
    wheres
        .iter()
        .map(|w| where_sql(backend, p, w, &resolve))
        .collect()
}

#[derive(Clone, Debug, Default)]
pub struct EntityQuery {
    /// `ids:1,2,3`: only these.
    pub ids: Option<Vec<i64>>,
    /// Free text: contained in any of the entity's text columns (case-insensitive).
    pub text: Option<String>,
    /// `where` filters, checked against `columns` when the query was read.
    pub wheres: Vec<WhereFilter>,
    /// `published=1`: only rows whose `isPublished` column is set.
    pub published_only: bool,
    /// The columns `wheres` and `published_only` name.
    pub columns: &'static [ListColumn],
    /// A column the caller has checked against the entity's own (never user text), and
    /// whether descending.
    pub order_by: (&'static str, bool),
    pub offset: i64,
    pub limit: i64,
}

impl EntityQuery {
    /// Moves an entity's own search commands among `names` (a note's `type:call`, a
    /// field's `group:social`) out of the free text, as `eq` filters on the column of that
    /// name; answers the values taken, for the caller to check.
    pub fn take_commands(&mut self, names: &[&str]) -> Vec<String> {
        let Some(text) = self.text.take() else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        let mut rest = Vec::new();
        for token in text.split_whitespace() {
            match token.split_once(':').and_then(|(name, value)| {
                Some((*names.iter().find(|n| n.eq_ignore_ascii_case(name))?, value))
            }) {
                Some((name, value)) => {
                    self.wheres.push(WhereFilter::eq(name, value));
                    taken.push(value.to_owned());
                }
                None => rest.push(token),
            }
        }
        self.text = Some(rest.join(" ")).filter(|t| !t.is_empty());
        taken
    }

    /// The WHERE condition: `ids` over `id_column`, `text` over `text_columns`, then
    /// `published_only` and `wheres`.
    pub fn condition(
        &self,
        backend: Backend,
        p: &mut Params,
        id_column: &str,
        text_columns: &[&str],
    ) -> String {
        let mut conds = Vec::new();
        if let Some(ids) = &self.ids {
            // `ids:` is capped where it is parsed (`PhpQuery::entity_query`).
            match ids.is_empty() {
                true => conds.push("1 = 0".to_owned()),
                false => conds.push(format!("{id_column} IN ({})", p.list(ids.iter().copied()))),
            }
        }
        if let Some(text) = self.text.as_deref().filter(|t| !t.is_empty()) {
            let ph = p.push(format!(
                "%{}%",
                super::events::escape_like(&super::fold::fold(text))
            ));
            let any: Vec<String> = text_columns
                .iter()
                .map(|c| {
                    format!(
                        "{}(coalesce({c}, '')) LIKE {ph} ESCAPE '\\'",
                        backend.fold_fn()
                    )
                })
                .collect();
            conds.push(format!("({})", any.join(" OR ")));
        }
        if self.published_only
            && let Some(c) = find_column(self.columns, "isPublished")
        {
            conds.push(format!("{} = 1", c.sql));
        }
        match where_conditions(backend, p, self.columns, &self.wheres) {
            Ok(more) => conds.extend(more),
            // Checked when the query was read (`PhpQuery::entity_query`): never reached.
            Err(_) => conds.push("1 = 0".to_owned()),
        }
        match conds.is_empty() {
            true => "1 = 1".to_owned(),
            false => conds.join(" AND "),
        }
    }

    /// `ORDER BY …`: the column, then `ties` (columns, the last one unique, for a stable
    /// page), all in the asked direction. NULLs sort as the smallest values on both
    /// databases (PostgreSQL's default is the opposite).
    pub fn order(&self, ties: &[&str]) -> String {
        let (column, descending) = self.order_by;
        let (dir, nulls) = match descending {
            true => ("DESC", "NULLS LAST"),
            false => ("ASC", "NULLS FIRST"),
        };
        let mut order = format!("ORDER BY {column} {dir} {nulls}");
        for tie in ties {
            order.push_str(&format!(", {tie} {dir}"));
        }
        order
    }
}
