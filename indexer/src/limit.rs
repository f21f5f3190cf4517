//! Token-bucket rate limits keyed by client network or session, held in a
//! bounded map (`docs/auth.md`, "Limits").
//!
//! A key starts with `burst` tokens; each request takes one; tokens come
//! back at `per_second` up to `burst`. A key whose bucket is full again is
//! the same as an absent one, so the map forgets it: at most `max_keys`
//! buckets are held, and when that many keys are all busy the fullest
//! sixteenth is dropped (those closest to forgotten anyway) rather than
//! refusing or admitting everyone. Dropping a sixteenth at once keeps a
//! full map cheap: one pass over the map per `max_keys / 16` new keys, not
//! one per new key (`limit::tests::a_full_map_is_swept_once_per_sixteenth`).

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// A rate: `burst` requests at once, then `per_second` on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests allowed at once (the bucket's size, ≥ 1).
    pub burst: u32,
    /// Tokens returned per second (> 0).
    pub per_second: f64,
}

impl Rate {
    /// `burst` at once, then one every `every`.
    pub fn new(burst: u32, every: Duration) -> Self {
        Self {
            burst: burst.max(1),
            per_second: 1.0 / every.as_secs_f64().max(1e-6),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Rate limits per key over at most `max_keys` keys.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
    /// Passes over the whole map so far (the cost a key flood can cause).
    sweeps: std::sync::atomic::AtomicU64,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    /// A limiter at `rate` per key, remembering at most `max_keys` keys.
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
            sweeps: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Passes over the whole map so far.
    pub fn sweeps(&self) -> u64 {
        self.sweeps.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes a token of `key` at `now`: `Ok(())`, or `Err(wait)` until the
    /// next one.
    pub fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.rate.burst);
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.rate.per_second)
                .min(burst)
        };
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !map.contains_key(key) && map.len() >= self.max_keys {
            self.sweeps
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Full buckets are the same as absent ones.
            map.retain(|_, b| refill(b) < burst);
            let room = (self.max_keys / 16).max(1);
            if map.len() + room > self.max_keys {
                // Still (nearly) full of busy keys: drop the fullest, so that
                // the next `room` new keys need no pass.
                let drop = map.len() + room - self.max_keys;
                let mut fullest: Vec<(f64, K)> =
                    map.iter().map(|(k, b)| (refill(b), k.clone())).collect();
                let at = fullest.len() - drop;
                fullest.select_nth_unstable_by(at, |a, b| a.0.total_cmp(&b.0));
                for (_, k) in &fullest[at..] {
                    map.remove(k);
                }
            }
        }
        let bucket = map.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refill(bucket);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64(
                (1.0 - tokens) / self.rate.per_second,
            ))
        }
    }

    /// [`Self::check_at`] now.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// No key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The network whose live sessions are capped together: an IPv4 address,
/// an IPv6 /48 (a site's usual allocation: one party can hold 65,536 /64s
/// but rarely more than a few /48s), an IPv4-mapped address as IPv4.
/// Written as text (`192.0.2.7`, `2001:db8:1::/48`).
pub fn session_network(ip: IpAddr) -> String {
    match client_network(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut s = v6.segments();
            s[3..].fill(0);
            format!("{}/48", std::net::Ipv6Addr::from(s))
        }
    }
}

/// The network a client address stands for: an IPv4 address itself, an
/// IPv6 address's /64 (one subscriber usually holds a whole /64, so keying
/// by the full address would let it use 2^64 keys); an IPv4-mapped IPv6
/// address counts as its IPv4 address.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let l = Limiter::new(Rate::new(3, Duration::from_secs(2)), 10);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check_at(&1, t), Ok(()));
        }
        let wait = l.check_at(&1, t).unwrap_err();
        assert!((wait.as_secs_f64() - 2.0).abs() < 1e-6, "{wait:?}");
        // Another key has its own bucket.
        assert_eq!(l.check_at(&2, t), Ok(()));
        // One token back after 2 s, not two.
        let t2 = t + Duration::from_secs(2);
        assert_eq!(l.check_at(&1, t2), Ok(()));
        assert!(l.check_at(&1, t2).is_err());
        // Refused attempts do not push the next token further away.
        let t3 = t2 + Duration::from_secs(2);
        assert_eq!(l.check_at(&1, t3), Ok(()));
    }

    #[test]
    fn the_map_stays_bounded_and_a_busy_key_keeps_its_debt() {
        let l = Limiter::new(Rate::new(2, Duration::from_secs(60)), 4);
        let t = Instant::now();
        // Key 0 uses its burst.
        assert!(l.check_at(&0, t).is_ok());
        assert!(l.check_at(&0, t).is_ok());
        assert!(l.check_at(&0, t).is_err());
        // A flood of other keys, each taking one token.
        for k in 1..10_000 {
            assert!(l.check_at(&k, t).is_ok());
            assert!(l.len() <= 4);
        }
        // Key 0 was the emptiest bucket, so it was never the one dropped.
        assert!(l.check_at(&0, t).is_err());
    }

    #[test]
    fn a_full_map_is_swept_once_per_sixteenth() {
        let max = 1024;
        let l = Limiter::new(Rate::new(20, Duration::from_secs(3)), max);
        let t = Instant::now();
        let victim = u64::MAX;
        for _ in 0..20 {
            l.check_at(&victim, t).unwrap();
        }
        for k in 0..max as u64 - 1 {
            l.check_at(&k, t).unwrap();
        }
        assert_eq!(l.sweeps(), 0);
        // 4 × max / 16 more busy keys: four passes, not one per key.
        for k in 0..(4 * max / 16) as u64 {
            l.check_at(&(1_000_000 + k), t).unwrap();
            assert!(l.len() <= max);
        }
        assert_eq!(l.sweeps(), 4);
        // The exhausted bucket was never among the fullest.
        assert!(l.check_at(&victim, t).is_err());
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let l = Limiter::new(Rate::new(1, Duration::from_secs(1)), 2);
        let t = Instant::now();
        assert!(l.check_at(&1, t).is_ok());
        assert!(l.check_at(&2, t).is_ok());
        let later = t + Duration::from_secs(5);
        assert!(l.check_at(&3, later).is_ok());
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn sessions_are_grouped_by_address_or_48() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:ffff:1::".parse().unwrap();
        let c: IpAddr = "2001:db8:2::1".parse().unwrap();
        assert_eq!(session_network(a), "2001:db8:1::/48");
        assert_eq!(session_network(a), session_network(b));
        assert_ne!(session_network(a), session_network(c));
        assert_eq!(
            session_network("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7"
        );
        assert_eq!(session_network("192.0.2.8".parse().unwrap()), "192.0.2.8");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_network(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_network(v4), v4);
    }
}
