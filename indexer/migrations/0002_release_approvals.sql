-- The threshold approval a release was published with, read from the
-- publishing transaction's calldata (decoded as `publishRelease` through the
-- bindings). Only for direct calls to the registry: a release relayed
-- through another contract has its manifest and signer mask (in `releases`)
-- but no row here.
CREATE TABLE release_approvals (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    signatures TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX release_approvals_release ON release_approvals (release_id);

CREATE TABLE release_approval_signers (
    block_number BIGINT NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index BIGINT NOT NULL,
    position BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    signer TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index, position)
);
