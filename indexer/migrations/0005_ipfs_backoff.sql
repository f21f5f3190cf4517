-- Backoff for unavailable leaf lists and pins (issue 18): an `unavailable`
-- row is retried no earlier than `next_attempt_at` (unix ms), which moves
-- out exponentially with `attempts` up to a cap (`backoff::Backoff`). 0: at
-- the next round (rows written before this migration).
ALTER TABLE batch_leaves ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pins ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
