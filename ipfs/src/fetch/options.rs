//! Limits and settings of a verified fetch, with safe defaults.

use std::sync::Arc;
use std::time::Duration;

use crate::Limits;

/// Default [`FetchOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`FetchOptions::response_timeout`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`FetchOptions::min_rate`]: 16 KiB/s.
pub const DEFAULT_MIN_RATE: u64 = 16 * 1024;
/// Default [`FetchOptions::rate_grace`].
pub const DEFAULT_RATE_GRACE: Duration = Duration::from_secs(20);
/// Shortest accepted [`FetchOptions::rate_grace`]: 100 ms. A shorter window measures the
/// runtime's timer and scheduling more than the gateway (zero would need zero bytes, so silence
/// would never fail).
pub const MIN_RATE_GRACE: Duration = Duration::from_millis(100);
/// Longest accepted [`FetchOptions::rate_grace`]: one hour, the longest silence a fetch can be
/// told to tolerate (a longer window is no rate guard, and deadlines that far out are refused
/// rather than risked past what a clock can hold).
pub const MAX_RATE_GRACE: Duration = Duration::from_secs(3600);
/// Default [`FetchOptions::max_overhead_percent`].
pub const DEFAULT_MAX_OVERHEAD_PERCENT: u64 = 25;
/// Response bytes always allowed beyond the file's bytes (CAR header, root and interior nodes).
pub const MIN_OVERHEAD_BYTES: u64 = 1024 * 1024;

/// Where a fetch stands, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchProgress {
    /// Verified file bytes written so far.
    pub position: u64,
    /// The expected file size.
    pub total: u64,
}

/// A progress callback; called after every verified block.
pub type ProgressFn = Arc<dyn Fn(FetchProgress) + Send + Sync>;

/// Settings of [`crate::fetch()`]. The defaults suit a device on a slow link fetching from
/// gateways it does not trust.
#[derive(Clone)]
pub struct FetchOptions {
    /// DAG limits; `max_total_size` is always replaced by the expected size.
    pub limits: Limits,
    /// Time to open a connection to a gateway. Default 10 s.
    pub connect_timeout: Duration,
    /// Time from sending a request to receiving the response headers. Default 30 s. In the
    /// raw-block fallback that wait is also the gateway's time in `min_rate`'s windows.
    pub response_timeout: Duration,
    /// Slowest acceptable transfer, in bytes per second, averaged over windows of `rate_grace`
    /// (a gateway that trickles data, falls silent, or delays each raw block response to hold
    /// the device is abandoned for the next; tests in `ipfs/tests/`:
    /// `fetch_attacks::slow_gateway_below_the_minimum_rate`,
    /// `fetch_attacks::silent_gateway_is_too_slow`,
    /// `review_rate_pause::review_silence_after_a_burst_fails_while_the_sink_is_idle`,
    /// `review_rate_pause::review_raw_responses_delayed_below_the_response_timeout_are_held_to_min_rate`).
    /// Default 16 KiB/s. The windows count the gateway's time only: time the fetch spends handing
    /// verified bytes on (writing the file, a [`crate::fetch_into`] sink waiting on its writer, the
    /// progress callback) is left out. In the raw-block fallback one window runs across the
    /// attempt's requests, the waits for their response headers included. Must be at least 1 and,
    /// with `rate_grace`, ask for at least one byte per window (otherwise the fetch refuses the
    /// options with [`crate::FetchError::InvalidOptions`]: a window needing no bytes would let a
    /// silent gateway hold the fetch forever).
    pub min_rate: u64,
    /// Length of the window over which `min_rate` is measured; also the longest silence
    /// tolerated (in the gateway's time, as for `min_rate`). Default 20 s. Between
    /// [`MIN_RATE_GRACE`] and [`MAX_RATE_GRACE`] inclusive; other values are refused with
    /// [`crate::FetchError::InvalidOptions`].
    pub rate_grace: Duration,
    /// Bytes one CAR response may carry beyond the file bytes it covers, as a percentage of those
    /// bytes (at least [`MIN_OVERHEAD_BYTES`]); more is endless data. Default 25 %, enough for
    /// 256-byte chunks.
    pub max_overhead_percent: u64,
    /// Fall back to one raw block request at a time where a gateway answers a CAR request with
    /// 406 or 501. Default true.
    pub raw_fallback: bool,
    /// Called after every verified block.
    pub progress: Option<ProgressFn>,
    /// Make the file durable before it appears: fsync it (and start writeback while it is
    /// written), rename it into place, fsync the directory. Default true. A caller that removes
    /// the file at its next start anyway (a device's download, deleted at start-up) turns it
    /// off and saves a whole-file fsync; the file still appears only when every byte verified.
    pub durable: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            min_rate: DEFAULT_MIN_RATE,
            rate_grace: DEFAULT_RATE_GRACE,
            max_overhead_percent: DEFAULT_MAX_OVERHEAD_PERCENT,
            raw_fallback: true,
            progress: None,
            durable: true,
        }
    }
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("limits", &self.limits)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("min_rate", &self.min_rate)
            .field("rate_grace", &self.rate_grace)
            .field("max_overhead_percent", &self.max_overhead_percent)
            .field("raw_fallback", &self.raw_fallback)
            .field("progress", &self.progress.as_ref().map(|_| "Fn"))
            .field("durable", &self.durable)
            .finish()
    }
}

impl FetchOptions {
    /// Checks the settings the fetch's guards depend on; [`crate::fetch()`],
    /// [`crate::fetch_into()`] and [`crate::fetch::probe_size()`] call it before any request, and
    /// a caller may call it earlier (when it reads its configuration).
    ///
    /// Refused, naming the field: `rate_grace` outside [`MIN_RATE_GRACE`]..=[`MAX_RATE_GRACE`],
    /// `min_rate` zero, or a `min_rate` and `rate_grace` whose window needs less than one byte.
    pub fn validate(&self) -> Result<(), crate::FetchError> {
        let invalid = |field, reason| Err(crate::FetchError::InvalidOptions { field, reason });
        if self.rate_grace < MIN_RATE_GRACE {
            return invalid(
                "rate_grace",
                "below the shortest window, 100 ms (zero would tolerate silence forever)",
            );
        }
        if self.rate_grace > MAX_RATE_GRACE {
            return invalid("rate_grace", "above the longest window, one hour");
        }
        if self.min_rate == 0 {
            return invalid(
                "min_rate",
                "zero (a window needing no bytes would tolerate silence forever)",
            );
        }
        if window_bytes(self.min_rate, self.rate_grace) == 0 {
            return invalid(
                "min_rate",
                "asks for less than one byte per rate_grace window (silence would never fail)",
            );
        }
        Ok(())
    }

    /// Largest CAR body accepted for the `remaining` file bytes.
    pub(crate) fn car_body_limit(&self, remaining: u64) -> u64 {
        let overhead = (remaining / 100)
            .saturating_mul(self.max_overhead_percent)
            .max(MIN_OVERHEAD_BYTES);
        remaining.saturating_add(overhead)
    }
}

/// Bytes a window of `grace` must carry at `min_rate` bytes per second (rounded down).
pub(crate) fn window_bytes(min_rate: u64, grace: Duration) -> u128 {
    u128::from(min_rate) * grace.as_nanos() / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_limit_has_a_floor_and_a_ratio() {
        let o = FetchOptions::default();
        assert_eq!(o.car_body_limit(0), MIN_OVERHEAD_BYTES);
        assert_eq!(o.car_body_limit(100 << 20), (100 << 20) + (25 << 20));
    }

    fn refused_field(o: &FetchOptions) -> Option<&'static str> {
        match o.validate() {
            Ok(()) => None,
            Err(crate::FetchError::InvalidOptions { field, .. }) => Some(field),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_rate_guards_settings_are_checked_at_their_edges() {
        let with = |min_rate, rate_grace| FetchOptions {
            min_rate,
            rate_grace,
            ..FetchOptions::default()
        };
        assert_eq!(refused_field(&FetchOptions::default()), None);
        assert_eq!(
            refused_field(&with(1 << 14, Duration::ZERO)),
            Some("rate_grace")
        );
        assert_eq!(
            refused_field(&with(1 << 14, MIN_RATE_GRACE - Duration::from_nanos(1))),
            Some("rate_grace")
        );
        assert_eq!(refused_field(&with(1 << 14, MIN_RATE_GRACE)), None);
        assert_eq!(refused_field(&with(1 << 14, MAX_RATE_GRACE)), None);
        assert_eq!(
            refused_field(&with(1 << 14, MAX_RATE_GRACE + Duration::from_nanos(1))),
            Some("rate_grace")
        );
        assert_eq!(
            refused_field(&with(1 << 14, Duration::MAX)),
            Some("rate_grace")
        );
        assert_eq!(
            refused_field(&with(0, DEFAULT_RATE_GRACE)),
            Some("min_rate")
        );
        // 1 byte/s over 100 ms is a tenth of a byte per window: nothing needed, refused.
        assert_eq!(refused_field(&with(1, MIN_RATE_GRACE)), Some("min_rate"));
        assert_eq!(refused_field(&with(10, MIN_RATE_GRACE)), None);
        assert_eq!(refused_field(&with(1, Duration::from_secs(1))), None);
        assert_eq!(refused_field(&with(u64::MAX, MAX_RATE_GRACE)), None);
    }
}
