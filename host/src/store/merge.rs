//! Moving everything a contact owns to another contact, for merges.
//!
//! Each kind of row that belongs to a contact is one line in `MOVES`: either it is simply
//! reassigned, or it is a set keyed by some columns (tags, IPs, companies, do-not-contact
//! channels) where a row the winner already has wins and the loser's duplicate goes.

use std::collections::HashMap;

use super::db::{DbResult, Exec, Params};
use crate::params;

enum Move {
    /// `UPDATE table SET contact_id = winner WHERE contact_id = loser`.
    Reassign,
    /// As Reassign, but rows whose key the winner already has are dropped first.
    Union(&'static [&'static str]),
}

/// Every table with a `contact_id` column. Adding a kind of row is one line here.
const MOVES: &[(&str, Move)] = &[
    ("contact_events", Move::Reassign),
    ("contact_notes", Move::Reassign),
    ("contact_utm_tags", Move::Reassign),
    ("devices", Move::Reassign),
    ("form_submissions", Move::Reassign),
    ("contact_tags", Move::Union(&["tag_id"])),
    ("contact_ips", Move::Union(&["ip"])),
    ("contact_companies", Move::Union(&["company_id"])),
    ("contact_dnc", Move::Union(&["channel"])),
];

/// How many rows of each kind moved.
pub type Moved = Vec<(&'static str, u64)>;

pub async fn move_rows(db: &mut impl Exec, winner: i64, loser: i64) -> DbResult<Moved> {
    // IP addresses seen by both: keep the earliest first sighting and the latest last one.
    db.execute(
        "UPDATE contact_ips SET
            first_seen = (SELECT MIN(l.first_seen) FROM contact_ips l WHERE l.contact_id = $2 AND l.ip = contact_ips.ip AND l.first_seen < contact_ips.first_seen),
            last_seen = contact_ips.last_seen
         WHERE contact_id = $1 AND EXISTS (SELECT 1 FROM contact_ips l WHERE l.contact_id = $2 AND l.ip = contact_ips.ip AND l.first_seen < contact_ips.first_seen)",
        params![winner, loser],
    )
    .await?;
    db.execute(
        "UPDATE contact_ips SET last_seen = (SELECT l.last_seen FROM contact_ips l WHERE l.contact_id = $2 AND l.ip = contact_ips.ip)
         WHERE contact_id = $1 AND EXISTS (SELECT 1 FROM contact_ips l WHERE l.contact_id = $2 AND l.ip = contact_ips.ip AND l.last_seen > contact_ips.last_seen)",
        params![winner, loser],
    )
    .await?;
    let mut moved = Vec::new();
    for (table, how) in MOVES {
        if let Move::Union(key) = how {
            let cols = key.join(", ");
            db.execute(
                &format!("DELETE FROM {table} WHERE contact_id = $1 AND ({cols}) IN (SELECT {cols} FROM {table} WHERE contact_id = $2)"),
                params![loser, winner],
            )
            .await?;
        }
        let n = db
            .execute(
                &format!("UPDATE {table} SET contact_id = $1 WHERE contact_id = $2"),
                params![winner, loser],
            )
            .await?;
        moved.push((*table, n));
    }
    // Earlier merges into the loser now point at the winner, so every old id resolves in one step.
    db.execute(
        "UPDATE contact_merges SET winner_id = $1 WHERE winner_id = $2",
        params![winner, loser],
    )
    .await?;
    Ok(moved)
}

/// Records that `loser` became `winner`.
pub async fn record(db: &mut impl Exec, winner: i64, loser: i64, now: i64) -> DbResult<()> {
    db.execute(
        "INSERT INTO contact_merges (loser_id, winner_id, merged_at) VALUES ($1, $2, $3)
         ON CONFLICT (loser_id) DO UPDATE SET winner_id = excluded.winner_id, merged_at = excluded.merged_at",
        params![loser, winner, now],
    )
    .await
    .map(drop)
}

/// The contact an id names now: itself while it exists, else the contact it was merged
/// into, if that exists.
pub async fn current_id(db: &mut impl Exec, id: i64) -> DbResult<Option<i64>> {
    Ok(current_ids(db, &[id]).await?.get(&id).copied())
}

/// `current_id` of each of `ids` that names a contact now, in one statement per 500.
pub async fn current_ids(db: &mut impl Exec, ids: &[i64]) -> DbResult<HashMap<i64, i64>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut p = Params::default();
        let list = p.list(chunk.iter().copied());
        let rows = db
            .fetch_all(
                &format!(
                    "SELECT id AS asked, id AS now FROM contacts WHERE id IN ({list}) \
                     UNION ALL SELECT m.loser_id, m.winner_id FROM contact_merges m \
                     JOIN contacts w ON w.id = m.winner_id WHERE m.loser_id IN ({list})"
                ),
                p.values,
            )
            .await?;
        for r in rows {
            let (asked, now) = (r.i64("asked"), r.i64("now"));
            // An id that exists names itself, whatever a merge once recorded for it.
            if asked == now || !out.contains_key(&asked) {
                out.insert(asked, now);
            }
        }
    }
    Ok(out)
}
