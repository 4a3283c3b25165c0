-- Plugins: what the admin decided about each plugin (enabled, grants, configuration,
-- webhook secret), its call statistics, and its private key-value storage. The
-- plugins' code lives in the binary (built-ins) and in <data-dir>/plugins/.

CREATE TABLE plugins (
    name                 TEXT PRIMARY KEY,
    enabled              BIGINT NOT NULL DEFAULT 1,
    -- JSON list of capability strings ("record-events", "http:https://api.example.com").
    granted              TEXT NOT NULL DEFAULT '[]',
    -- JSON object: setting key -> value.
    config               TEXT NOT NULL DEFAULT '{}',
    webhook_secret       TEXT NOT NULL,
    calls                BIGINT NOT NULL DEFAULT 0,
    errors               BIGINT NOT NULL DEFAULT 0,
    -- Sum of call durations in microseconds (mean = total_call_us / calls).
    total_call_us        BIGINT NOT NULL DEFAULT 0,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    -- Set when the host disabled the plugin after repeated failures.
    disabled_reason      TEXT,
    last_error           TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE plugin_storage (
    plugin     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (plugin, key)
);
