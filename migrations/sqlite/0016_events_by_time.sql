-- Every contact's events by time (`GET /api/contacts/activity`), and by type and time
-- for its type filter. Their keys are the event's time, nearly always now, so each
-- insert lands at the right edge of the index (or of its type's range): cheap.
CREATE INDEX contact_events_time ON contact_events (occurred_at);
CREATE INDEX contact_events_type_time ON contact_events (event_type, occurred_at);
