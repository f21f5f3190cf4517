//! Admission of requests: a bounded wait for a slot, with a per-client share.
//!
//! One honest client fetching one file block by block (Helia's trustless-gateway broker sends
//! about 175 raw-block requests at once) must be served, so a request that finds no free slot
//! waits for one instead of being refused at once. Waiting is bounded three ways, and only then
//! is a request refused with 429 (`Retry-After`):
//!
//! - each client (keyed by peer IP; IPv6 by its /64, which one host usually holds whole) holds at
//!   most [`GatewayConfig::max_requests_per_client`] slots, so one client flooding the gateway
//!   leaves the other slots to others, and the requests waiting for the shared slots are at most
//!   that many per client, served first come first served (tokio's semaphores are FIFO);
//! - at most [`GatewayConfig::max_queued_per_client`] requests of one client, and
//!   [`GatewayConfig::max_queued_requests`] in all, wait at once; more are refused at once
//!   ("queue full");
//! - a request waits at most [`GatewayConfig::queue_timeout`] ("waited too long").

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};

use super::GatewayConfig;
use super::errors::{Busy, GatewayError};

/// Whom a request is counted against: the peer's IPv4 address or IPv6 /64 prefix; `None` when
/// the server does not know the peer (a router used without `serve`, in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(Option<IpAddr>);

impl ClientKey {
    /// The key of a peer address.
    pub(crate) fn of(peer: Option<IpAddr>) -> Self {
        Self(peer.map(|ip| match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(prefix.into())
                }
            },
        }))
    }
}

/// One client's share and how many of its requests are admitted (holding or waiting).
#[derive(Debug)]
struct Client {
    share: Arc<Semaphore>,
    admitted: usize,
}

#[derive(Debug, Default)]
struct Admitted {
    total: usize,
    clients: HashMap<ClientKey, Client>,
}

/// The slots of `config`: at least one, at most what a semaphore can count (a larger
/// configured value, e.g. `usize::MAX` meaning "no limit", would make it panic).
fn slots(config: &GatewayConfig) -> usize {
    config
        .max_concurrent_requests
        .clamp(1, Semaphore::MAX_PERMITS)
}

/// The gateway's slots and queue.
#[derive(Debug)]
pub(crate) struct Limiter {
    config: GatewayConfig,
    /// Slots shared by all clients (`max_concurrent_requests`).
    slots: Arc<Semaphore>,
    admitted: Mutex<Admitted>,
}

/// A slot held for one request (and, for a CAR stream, until the stream ends).
#[derive(Debug)]
pub(crate) struct Slot {
    _slot: OwnedSemaphorePermit,
    _share: OwnedSemaphorePermit,
    _ticket: Ticket,
}

/// An admitted request; leaving (served, refused after waiting, or dropped by a client that went
/// away) frees its place.
#[derive(Debug)]
struct Ticket {
    limiter: Arc<Limiter>,
    key: ClientKey,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut admitted = self.limiter.lock();
        admitted.total -= 1;
        if let Some(client) = admitted.clients.get_mut(&self.key) {
            client.admitted -= 1;
            if client.admitted == 0 {
                admitted.clients.remove(&self.key);
            }
        }
    }
}

impl Limiter {
    pub(crate) fn new(config: GatewayConfig) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(slots(&config))),
            config,
            admitted: Mutex::new(Admitted::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Admitted> {
        // The counters stay consistent whatever panicked while holding the lock.
        self.admitted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Slots one client may hold: its share, never more than all slots.
    fn share(&self) -> usize {
        self.config
            .max_requests_per_client
            .clamp(1, slots(&self.config))
    }

    /// Wait for a slot for a request of `key`, or say why not.
    pub(crate) async fn acquire(self: &Arc<Self>, key: ClientKey) -> Result<Slot, GatewayError> {
        let share = self.share();
        let (ticket, client_share) = {
            let mut admitted = self.lock();
            let queued = admitted.clients.get(&key).map_or(0, |c| c.admitted);
            if queued >= share.saturating_add(self.config.max_queued_per_client) {
                return Err(GatewayError::Busy(Busy::ClientQueueFull { queued }));
            }
            let total_cap = slots(&self.config).saturating_add(self.config.max_queued_requests);
            if admitted.total >= total_cap {
                return Err(GatewayError::Busy(Busy::QueueFull {
                    queued: admitted.total,
                }));
            }
            let client = admitted.clients.entry(key).or_insert_with(|| Client {
                share: Arc::new(Semaphore::new(share)),
                admitted: 0,
            });
            client.admitted += 1;
            let client_share = Arc::clone(&client.share);
            admitted.total += 1;
            (
                Ticket {
                    limiter: Arc::clone(self),
                    key,
                },
                client_share,
            )
        };
        let deadline = Instant::now() + self.config.queue_timeout;
        let waited = || {
            GatewayError::Busy(Busy::WaitedTooLong {
                waited: self.config.queue_timeout,
            })
        };
        let share = timeout_at(deadline, client_share.acquire_owned())
            .await
            .map_err(|_| waited())?
            .map_err(|_| GatewayError::Internal("client share semaphore closed".into()))?;
        let slot = timeout_at(deadline, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| waited())?
            .map_err(|_| GatewayError::Internal("slot semaphore closed".into()))?;
        Ok(Slot {
            _slot: slot,
            _share: share,
            _ticket: ticket,
        })
    }

    /// Requests admitted (holding a slot or waiting), for tests.
    #[cfg(test)]
    fn admitted(&self) -> (usize, usize) {
        let a = self.lock();
        (a.total, a.clients.len())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;
    use std::time::Duration;

    use super::*;

    fn config(
        slots: usize,
        per_client: usize,
        queued: usize,
        per_client_queued: usize,
    ) -> GatewayConfig {
        GatewayConfig {
            max_concurrent_requests: slots,
            max_requests_per_client: per_client,
            max_queued_requests: queued,
            max_queued_per_client: per_client_queued,
            queue_timeout: Duration::from_secs(30),
            ..GatewayConfig::default()
        }
    }

    fn key(s: &str) -> ClientKey {
        ClientKey::of(Some(s.parse().unwrap()))
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix() {
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
        assert_eq!(
            key("::ffff:10.0.0.1"),
            ClientKey::of(Some("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            ClientKey::of(Some(IpAddr::V6(Ipv6Addr::LOCALHOST))),
            key("::2")
        );
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_slot_that_frees() {
        let limiter = Limiter::new(config(1, 1, 4, 4));
        let a = key("10.0.0.1");
        let held = limiter.acquire(a).await.unwrap();
        let l = Arc::clone(&limiter);
        let waiter = tokio::spawn(async move { l.acquire(a).await.map(drop) });
        // The waiter is admitted (queued) before the slot frees.
        while limiter.admitted().0 < 2 {
            tokio::task::yield_now().await;
        }
        drop(held);
        waiter.await.unwrap().unwrap();
        assert_eq!(limiter.admitted(), (0, 0));
    }

    #[tokio::test]
    async fn queues_are_bounded_per_client_and_in_all() {
        let limiter = Limiter::new(config(2, 1, 4, 2));
        let (a, b) = (key("10.0.0.1"), key("10.0.0.2"));
        let _a = limiter.acquire(a).await.unwrap();
        let _b = limiter.acquire(b).await.unwrap();
        let mut waiting = Vec::new();
        for k in [a, a, b, b] {
            let l = Arc::clone(&limiter);
            waiting.push(tokio::spawn(async move { l.acquire(k).await.map(drop) }));
        }
        while limiter.admitted().0 < 6 {
            tokio::task::yield_now().await;
        }
        // a: 1 holding + 2 waiting = its share + its queue.
        assert!(matches!(
            limiter.acquire(a).await,
            Err(GatewayError::Busy(Busy::ClientQueueFull { queued: 3 }))
        ));
        // A third client has nothing queued, but the gateway's 2 slots + 4 queued are taken.
        assert!(matches!(
            limiter.acquire(key("10.0.0.3")).await,
            Err(GatewayError::Busy(Busy::QueueFull { queued: 6 }))
        ));
        assert_eq!(limiter.admitted(), (6, 2));
        for w in waiting {
            w.abort();
        }
    }

    #[tokio::test]
    async fn a_cancelled_wait_frees_its_place_at_either_stage() {
        // Waiting for the client's share, then for a shared slot: cancelling either frees
        // everything it held, and the counts return to what the holders account for.
        let limiter = Limiter::new(config(2, 1, 4, 4));
        let (a, b) = (key("10.0.0.1"), key("10.0.0.2"));
        let held_a = limiter.acquire(a).await.unwrap();
        let held_c = limiter.acquire(key("10.0.0.3")).await.unwrap();
        // a's second request waits for a's share; b's waits for a shared slot.
        let (l1, l2) = (Arc::clone(&limiter), Arc::clone(&limiter));
        let wait_share = tokio::spawn(async move { l1.acquire(a).await.map(drop) });
        let wait_slot = tokio::spawn(async move { l2.acquire(b).await.map(drop) });
        while limiter.admitted().0 < 4 {
            tokio::task::yield_now().await;
        }
        wait_share.abort();
        wait_slot.abort();
        assert!(wait_share.await.unwrap_err().is_cancelled());
        assert!(wait_slot.await.unwrap_err().is_cancelled());
        assert_eq!(limiter.admitted(), (2, 2));
        // No permit leaked: with both holders gone, 2 clients get the 2 slots at once.
        drop((held_a, held_c));
        assert_eq!(limiter.admitted(), (0, 0));
        let _x = limiter.acquire(a).await.unwrap();
        let _y = limiter.acquire(b).await.unwrap();
        assert_eq!(limiter.slots.available_permits(), 0);
    }

    #[tokio::test]
    async fn limits_at_the_integer_edge_neither_panic_nor_wrap() {
        // "No limit" written as usize::MAX: no panic creating the semaphores, no overflow
        // adding share and queue (which, wrapped, would refuse nearly everything).
        let limiter = Limiter::new(config(usize::MAX, usize::MAX, usize::MAX, usize::MAX));
        let a = key("10.0.0.1");
        let mut held = Vec::new();
        for _ in 0..100 {
            held.push(limiter.acquire(a).await.unwrap());
        }
        assert_eq!(limiter.admitted(), (100, 1));
        drop(held);
        assert_eq!(limiter.admitted(), (0, 0));
        // A share of usize::MAX with 2 slots is 2 slots; the queue of usize::MAX does not wrap.
        let limiter = Limiter::new(GatewayConfig {
            queue_timeout: Duration::from_millis(20),
            ..config(2, usize::MAX, usize::MAX, usize::MAX)
        });
        let _x = limiter.acquire(a).await.unwrap();
        let _y = limiter.acquire(a).await.unwrap();
        assert!(matches!(
            limiter.acquire(a).await,
            Err(GatewayError::Busy(Busy::WaitedTooLong { .. }))
        ));
        assert_eq!(limiter.admitted(), (2, 1));
    }

    #[tokio::test]
    async fn a_request_waits_at_most_the_queue_timeout() {
        let limiter = Limiter::new(GatewayConfig {
            queue_timeout: Duration::from_millis(50),
            ..config(1, 1, 4, 4)
        });
        let a = key("10.0.0.1");
        let _held = limiter.acquire(a).await.unwrap();
        assert!(matches!(
            limiter.acquire(a).await,
            Err(GatewayError::Busy(Busy::WaitedTooLong { .. }))
        ));
        // The refused request left the queue.
        assert_eq!(limiter.admitted(), (1, 1));
    }
}
