//! The search, order and page of the simple entity lists of Mautic's API (tags, stages,
//! notes, companies): `search` is free text or `ids:1,2,3`, `orderBy` one of the
//! entity's columns.

use super::db::{Backend, Params};

#[derive(Clone, Debug, Default)]
pub struct EntityQuery {
    /// `ids:1,2,3`: only these.
    pub ids: Option<Vec<i64>>,
    /// Free text: contained in any of the entity's text columns (case-insensitive).
    pub text: Option<String>,
    /// A column the caller has checked against the entity's own (never user text), and
    /// whether descending.
    pub order_by: (&'static str, bool),
    pub offset: i64,
    pub limit: i64,
}

impl EntityQuery {
    /// The WHERE condition for `ids` and `text` over `id_column` and `text_columns`.
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
