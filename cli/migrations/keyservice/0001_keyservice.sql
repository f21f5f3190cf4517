-- The key service's progress (docs/cli.md, `keys serve`). Hashes, addresses
-- and release ids are lowercase 0x-hex TEXT.
--
-- What the follower mirrors (rewound together on a reorg, committed with the
-- checkpoint in one transaction): sync_state, recent_blocks, batches,
-- releases, purchases. What the service issued (never rewound: a delivered
-- key cannot be taken back): issued_keys, refusals.

CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    chain_id INTEGER NOT NULL,
    registry TEXT NOT NULL,
    market TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL
);

CREATE TABLE recent_blocks (
    block_number INTEGER PRIMARY KEY,
    block_hash TEXT NOT NULL
);

-- The manufacturer's device batches (DevicesProvisioned).
CREATE TABLE batches (
    batch_id INTEGER PRIMARY KEY,
    first_index INTEGER NOT NULL,
    device_count INTEGER NOT NULL,
    root TEXT NOT NULL,
    leaves_cid TEXT NOT NULL,
    block_number INTEGER NOT NULL
);
CREATE INDEX batches_first_index ON batches (first_index);

-- Published releases (ReleasePublished) and their revocation (ReleaseRevoked).
CREATE TABLE releases (
    release_id TEXT PRIMARY KEY,
    model_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    revoked_block INTEGER
);

-- One row per (release, device) bought (Purchased).
CREATE TABLE purchases (
    release_id TEXT NOT NULL,
    device_index INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    PRIMARY KEY (release_id, device_index)
);
CREATE INDEX purchases_block ON purchases (block_number);

-- One key per (release, device), ever: the primary key makes a restart unable to reissue.
CREATE TABLE issued_keys (
    release_id TEXT NOT NULL,
    device_index INTEGER NOT NULL,
    device TEXT NOT NULL,
    attributes TEXT NOT NULL,
    delivery BLOB NOT NULL,
    cid TEXT NOT NULL,
    purchase_block INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    PRIMARY KEY (release_id, device_index)
);

-- Purchases the service will never issue (a device of another manufacturer or
-- model, a revoked release), with the reason.
CREATE TABLE refusals (
    release_id TEXT NOT NULL,
    device_index INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (release_id, device_index)
);
