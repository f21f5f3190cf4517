-- One schema for PostgreSQL and SQLite (only types and syntax both accept).
-- Conventions (docs/indexer.md): hashes, addresses and byte strings are
-- lowercase 0x-hex TEXT; uint256/uint128 amounts are decimal TEXT; uint64
-- values a manufacturer chooses (version, minVersion, expiry, bundleSize) are
-- 20-digit zero-padded decimal TEXT, so text order is numeric order and no
-- value is ever truncated; contract counters and ids are BIGINT.
-- Every event row carries block_number, block_hash, tx_hash and log_index;
-- rows of a list inside an event add its position.

CREATE TABLE sync_state (
    id BIGINT PRIMARY KEY,
    chain_id BIGINT NOT NULL,
    registry TEXT NOT NULL,
    market TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL
);

CREATE TABLE recent_blocks (
    block_number BIGINT PRIMARY KEY,
    block_hash TEXT NOT NULL
);

CREATE TABLE manufacturers (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    manufacturer_id BIGINT NOT NULL,
    operator TEXT NOT NULL,
    payee TEXT NOT NULL,
    name TEXT NOT NULL,
    params_cid TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX manufacturers_id ON manufacturers (manufacturer_id);

CREATE TABLE signer_sets (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    manufacturer_id BIGINT NOT NULL,
    nonce BIGINT,
    threshold BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX signer_sets_manufacturer ON signer_sets (manufacturer_id);

CREATE TABLE signer_set_members (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    position BIGINT NOT NULL,
    manufacturer_id BIGINT NOT NULL,
    signer TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index, position)
);
CREATE INDEX signer_set_members_signer ON signer_set_members (signer);

CREATE TABLE manufacturer_updates (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    manufacturer_id BIGINT NOT NULL,
    nonce BIGINT NOT NULL,
    operator TEXT NOT NULL,
    payee TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX manufacturer_updates_manufacturer ON manufacturer_updates (manufacturer_id);

CREATE TABLE params_cids (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    manufacturer_id BIGINT NOT NULL,
    params_cid TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX params_cids_manufacturer ON params_cids (manufacturer_id);

CREATE TABLE models (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    model_id BIGINT NOT NULL,
    manufacturer_id BIGINT NOT NULL,
    min_version TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX models_id ON models (model_id);
CREATE INDEX models_manufacturer ON models (manufacturer_id);

CREATE TABLE floors (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    model_id BIGINT NOT NULL,
    min_version TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX floors_model ON floors (model_id);

CREATE TABLE batches (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    batch_id BIGINT NOT NULL,
    manufacturer_id BIGINT NOT NULL,
    first_index BIGINT NOT NULL,
    device_count BIGINT NOT NULL,
    root TEXT NOT NULL,
    leaves_cid TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX batches_id ON batches (batch_id);
CREATE INDEX batches_manufacturer ON batches (manufacturer_id);

CREATE TABLE claims (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    device_index BIGINT NOT NULL,
    owner TEXT NOT NULL,
    device TEXT NOT NULL,
    model_id BIGINT NOT NULL,
    batch_id BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX claims_device ON claims (device_index);
CREATE INDEX claims_owner ON claims (owner);
CREATE INDEX claims_model ON claims (model_id);

CREATE TABLE transfers (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    device_index BIGINT NOT NULL,
    from_address TEXT NOT NULL,
    to_address TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX transfers_device ON transfers (device_index);
CREATE INDEX transfers_to ON transfers (to_address);

CREATE TABLE status_changes (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    device_index BIGINT NOT NULL,
    status BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX status_changes_device ON status_changes (device_index);

CREATE TABLE releases (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    model_id BIGINT NOT NULL,
    version TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    bundle_size TEXT NOT NULL,
    bundle_cid TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    price TEXT NOT NULL,
    payment_token TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    expiry TEXT NOT NULL,
    metadata_hash TEXT NOT NULL,
    signer_mask TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX releases_id ON releases (release_id);
CREATE INDEX releases_model ON releases (model_id, version);

CREATE TABLE revocations (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    model_id BIGINT NOT NULL,
    emergency BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX revocations_release ON revocations (release_id);

CREATE TABLE purchases (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    buyer TEXT NOT NULL,
    amount TEXT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX purchases_release ON purchases (release_id);
CREATE INDEX purchases_buyer ON purchases (buyer);

CREATE TABLE purchase_devices (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    position BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    device_index BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index, position)
);
CREATE INDEX purchase_devices_device ON purchase_devices (device_index);
CREATE INDEX purchase_devices_release ON purchase_devices (release_id);

CREATE TABLE refunds (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    amount TEXT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX refunds_release ON refunds (release_id);

CREATE TABLE refund_devices (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    position BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    device_index BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index, position)
);
CREATE INDEX refund_devices_device ON refund_devices (device_index);

CREATE TABLE withdrawals (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    manufacturer_id BIGINT NOT NULL,
    payee TEXT NOT NULL,
    amount TEXT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX withdrawals_release ON withdrawals (release_id);
CREATE INDEX withdrawals_manufacturer ON withdrawals (manufacturer_id);
