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
    /// Time from sending a request to receiving the response headers. Default 30 s.
    pub response_timeout: Duration,
    /// Slowest acceptable transfer, in bytes per second, averaged over windows of `rate_grace`
    /// (a gateway that trickles data to hold the device is abandoned). Default 16 KiB/s. The
    /// windows count the gateway's time only: time the fetch spends handing verified bytes on
    /// (writing the file, a [`crate::fetch_into`] sink waiting on its writer, the progress
    /// callback) is left out.
    pub min_rate: u64,
    /// Length of the window over which `min_rate` is measured; also the longest silence
    /// tolerated (in the gateway's time, as for `min_rate`). Default 20 s.
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
    /// Largest CAR body accepted for the `remaining` file bytes.
    pub(crate) fn car_body_limit(&self, remaining: u64) -> u64 {
        let overhead = (remaining / 100)
            .saturating_mul(self.max_overhead_percent)
            .max(MIN_OVERHEAD_BYTES);
        remaining.saturating_add(overhead)
    }
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
}
