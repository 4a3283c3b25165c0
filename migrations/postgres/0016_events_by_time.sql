-- Every contact's events by time (`GET /api/contacts/activity`). The key is the event's
-- time, nearly always now, so each insert lands at the index's right edge: cheap.
CREATE INDEX contact_events_time ON contact_events (occurred_at, id);
