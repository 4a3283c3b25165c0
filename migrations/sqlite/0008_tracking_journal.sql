-- How far the tracking applier got in each hit journal (a SQLite file in a server's data
-- dir, see tracking/journal.rs). It moves in the transaction that applies the hits, so a
-- crash anywhere applies every journaled hit exactly once.
CREATE TABLE tracking_journal_marks (
    journal_id      TEXT    PRIMARY KEY,
    applied_through INTEGER NOT NULL
);
