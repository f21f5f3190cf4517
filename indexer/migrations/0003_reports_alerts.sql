-- Install reports (off-chain, signed by the devices) and alerts of the
-- anomaly rules. Same conventions as 0001: lowercase 0x-hex TEXT, versions as
-- 20-digit zero-padded decimal TEXT, times in unix milliseconds (received_at,
-- created_at) or the device's unix seconds (report_time).
--
-- Reports are not chain data: a reorg rewind never deletes them. Alerts
-- derived from chain rows (source = 'chain') are deleted with the rows above
-- the common ancestor; alerts derived from reports (source = 'report') stay.

CREATE TABLE reports (
    device_index BIGINT NOT NULL,
    nonce BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    version TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    report_time BIGINT NOT NULL,
    signer TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    raw TEXT NOT NULL,
    PRIMARY KEY (device_index, nonce)
);
CREATE INDEX reports_release ON reports (release_id, outcome, detail);
CREATE INDEX reports_received ON reports (received_at, device_index, nonce);

-- The highest nonce accepted per device (a report needs a higher one).
CREATE TABLE report_nonces (
    device_index BIGINT PRIMARY KEY,
    nonce BIGINT NOT NULL
);

CREATE TABLE alerts (
    alert_id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    source TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    summary TEXT NOT NULL,
    evidence TEXT NOT NULL,
    links TEXT NOT NULL
);
CREATE INDEX alerts_rule ON alerts (rule, block_number);
CREATE INDEX alerts_block ON alerts (block_number, alert_id);

-- How far the chain rules have been evaluated (-1: nothing yet).
CREATE TABLE alert_state (
    id BIGINT PRIMARY KEY,
    evaluated_block BIGINT NOT NULL
);
INSERT INTO alert_state (id, evaluated_block) VALUES (1, -1);
