//! One `reqwest::Client` per setting in the process (`client` feature).
//!
//! Each new client loads and parses the system's root certificates (about 330 KB of heap), so
//! a process that builds many, such as the demo's fleet of simulated devices (4–5 clients per
//! device), spent 330 MiB at 1,000 devices on copies of them. [`shared_client`] hands out one
//! client per [`ClientSettings`] instead. A shared client also shares its connection pool,
//! which holds no secret of a caller; pooled connections are per host and close with the tokio
//! runtime that opened them (the pool then drops them), so callers on several runtimes in one
//! process (tests) do not break each other.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock, PoisonError},
    time::Duration,
};

/// What a shared client is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientSettings {
    /// Time to open a connection (reqwest's default if `None`).
    pub connect_timeout: Option<Duration>,
    /// Time for a whole request (none if `None`).
    pub timeout: Option<Duration>,
    /// Follow redirects (reqwest's default policy) or treat them as the answer.
    pub follow_redirects: bool,
}

/// The process's client for `settings`, built on first use.
pub fn shared_client(settings: ClientSettings) -> Result<reqwest::Client, reqwest::Error> {
    static CLIENTS: OnceLock<Mutex<HashMap<ClientSettings, reqwest::Client>>> = OnceLock::new();
    // A panic while the lock was held cannot leave the map half-updated: take it anyway.
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(client) = clients.get(&settings) {
        return Ok(client.clone());
    }
    let mut builder = reqwest::Client::builder().redirect(if settings.follow_redirects {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    });
    if let Some(connect_timeout) = settings.connect_timeout {
        builder = builder.connect_timeout(connect_timeout);
    }
    if let Some(timeout) = settings.timeout {
        builder = builder.timeout(timeout);
    }
    let client = builder.build()?;
    clients.insert(settings, client.clone());
    Ok(client)
}
