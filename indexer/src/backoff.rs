//! Exponential backoff, with a cap, for leaf lists and pins found
//! `unavailable`: the `n`-th failed try of one CID waits
//! `first × 2^(n−1)` (at most `cap`) before the next, recorded per row as
//! `next_attempt_at` so it survives restarts. How many rows wait, and the
//! longest wait, are in `/metrics` ([`waiting`]).

use std::time::Duration;

use sqlx::{AnyPool, Row as _};

use crate::Result;

/// The retry schedule of unavailable leaf lists and pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failed try.
    pub first: Duration,
    /// Longest wait.
    pub cap: Duration,
}

impl Default for Backoff {
    /// 10 s after the first failure, doubling, at most 30 min.
    fn default() -> Self {
        Self {
            first: Duration::from_secs(10),
            cap: Duration::from_secs(30 * 60),
        }
    }
}

impl Backoff {
    /// No wait: every round retries (the behaviour before backoff; tests).
    pub const NONE: Self = Self {
        first: Duration::ZERO,
        cap: Duration::ZERO,
    };

    /// The wait after `attempts` failed tries (`attempts` ≥ 1; 0 waits nothing).
    pub fn after(&self, attempts: i64) -> Duration {
        if attempts <= 0 {
            return Duration::ZERO;
        }
        let doublings = (attempts - 1).min(32) as u32;
        self.first
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// `next_attempt_at` (unix ms) for a row that just failed its
    /// `attempts`-th try at `now_ms`.
    pub fn next_attempt_at(&self, attempts: i64, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.after(attempts).as_millis().min(i64::MAX as u128) as i64)
    }
}

/// The current time in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Rows waiting for a retry, per kind (`leaves`: `batch_leaves`, `pins`):
/// how many, and the longest remaining wait in seconds.
pub async fn waiting(pool: &AnyPool) -> Result<Vec<(&'static str, i64, f64)>> {
    let now = now_ms();
    let mut out = Vec::new();
    for (kind, table) in [("leaves", "batch_leaves"), ("pins", "pins")] {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*), COALESCE(MAX(next_attempt_at), 0) FROM {table} \
             WHERE status = 'unavailable' AND next_attempt_at > $1"
        )))
        .bind(now)
        .fetch_one(pool)
        .await
        .map_err(crate::error::db("reading retry backoff"))?;
        let read = crate::error::db("reading retry backoff");
        let count: i64 = row.try_get(0).map_err(&read)?;
        let latest: i64 = row.try_get(1).map_err(&read)?;
        let wait = if count > 0 {
            (latest - now).max(0) as f64 / 1000.0
        } else {
            0.0
        };
        out.push((kind, count, wait));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_first_up_to_the_cap() {
        let b = Backoff {
            first: Duration::from_secs(10),
            cap: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (0..=6).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(waits, [0, 10, 20, 40, 60, 60, 60]);
        // Far past any shift: still the cap, no overflow.
        assert_eq!(b.after(i64::MAX), Duration::from_secs(60));
        assert_eq!(b.next_attempt_at(1, 1_000), 11_000);
        assert_eq!(Backoff::NONE.after(5), Duration::ZERO);
    }
}
