-- Batch leaf lists (issue 18 §1).
--
-- `batch_leaves`: one row per batch once its leaf list (`leavesCid`) was
-- looked at: `verified` (the list's Merkle root equals the batch's on-chain
-- root and its length the batch's device count), `mismatch` (it does not:
-- `computed_root`/`detail` say what was found; nothing from it is trusted),
-- `invalid` (not a CID, not a leaf list, too large), or `unavailable` (not in
-- the local store and no gateway delivered it; retried, `attempts` counts).
-- Keyed by the batch row's position: rows above a reorg's common ancestor go
-- with the batch (explicitly in `rewind`, and by the foreign key where it is
-- enforced).
CREATE TABLE batch_leaves (
    block_number BIGINT NOT NULL, log_index BIGINT NOT NULL,
    batch_id BIGINT NOT NULL,
    leaves_cid TEXT NOT NULL,
    status TEXT NOT NULL,
    computed_root TEXT,
    detail TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index),
    FOREIGN KEY (block_number, log_index) REFERENCES batches (block_number, log_index) ON DELETE CASCADE
);
CREATE INDEX batch_leaves_status ON batch_leaves (status);

-- Each device of a verified batch: its identity address and public key.
CREATE TABLE device_identities (
    block_number BIGINT NOT NULL, log_index BIGINT NOT NULL,
    position BIGINT NOT NULL,
    batch_id BIGINT NOT NULL,
    device_index BIGINT NOT NULL,
    device TEXT NOT NULL,
    model_id BIGINT NOT NULL,
    public_key TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index, position),
    FOREIGN KEY (block_number, log_index) REFERENCES batches (block_number, log_index) ON DELETE CASCADE
);
CREATE INDEX device_identities_index ON device_identities (device_index);
CREATE INDEX device_identities_device ON device_identities (device);

-- The pin follower (`--pin`): every release bundle CID and batch leaves CID,
-- `pinned` (every block in the local store, fetched block by block from the
-- gateways and hash-checked where missing; or pinned by the Kubo node),
-- `unavailable` (retried; `detail` names the missing block or the error) or
-- `invalid` (not a CID; `cid` then holds the value as the chain has it).
-- Keyed by CID: a pin survives reorgs.
CREATE TABLE pins (
    cid TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    attempts BIGINT NOT NULL
);
