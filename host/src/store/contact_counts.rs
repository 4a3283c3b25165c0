//! Exact totals of known and anonymous contacts, kept by triggers (migration 2), so the
//! unfiltered list shows its total without counting every row.

use super::db::{DbResult, Exec};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub known: i64,
    pub anonymous: i64,
}

pub async fn totals(db: &mut impl Exec) -> DbResult<Totals> {
    let rows = db
        .fetch_all("SELECT known, CAST(SUM(n) AS BIGINT) AS n FROM contact_counts GROUP BY known", vec![])
        .await?;
    let mut t = Totals::default();
    for r in rows {
        if r.i64("known") == 1 {
            t.known = r.i64("n");
        } else {
            t.anonymous = r.i64("n");
        }
    }
    Ok(t)
}
