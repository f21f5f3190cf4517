-- Sign-In with Ethereum (issue 16): what is not on chain. Times in unix
-- milliseconds. None of it is chain data: a reorg rewind never touches it.
--
-- Nonces handed out by GET /v1/auth/nonce; a login consumes one with a
-- single UPDATE (used_at set only where it was NULL), so a replay fails even
-- when two logins race.
CREATE TABLE auth_nonces (
    nonce TEXT PRIMARY KEY,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX auth_nonces_expiry ON auth_nonces (expires_at);

-- Sessions, keyed by keccak256 of the cookie's random id (the id itself is
-- stored nowhere); the CSRF token every write must echo.
CREATE TABLE auth_sessions (
    session_hash TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_sessions_expiry ON auth_sessions (expires_at);

-- An owner's label and map position of a device. `owner` is who wrote it:
-- the fleet shows the row only while that address still owns the device.
CREATE TABLE device_labels (
    device_index BIGINT PRIMARY KEY,
    owner TEXT NOT NULL,
    label TEXT NOT NULL,
    position_a DOUBLE PRECISION,
    position_b DOUBLE PRECISION,
    updated_at BIGINT NOT NULL
);
