//! Step 5, key: the device's purchased CP-ABE key, from the key service (`GET
//! /v1/keys/<release>/<device>`, docs/bundle-format.md and the key-service contract).
//!
//! Nothing the key service sends is trusted: the delivery (`otaledger-key` v1) must be signed by
//! the key-service address fixed at provisioning (`[key_service] address` in `device.toml`), for
//! this chain, registry and device, for exactly the approved release, and must decrypt with the
//! device's identity key. A `404` is "not issued yet" (not paid, or the purchase not yet
//! confirmed): [`Error::KeyNotIssued`], which the device retries at its next check instead of
//! looping.
//!
//! Attacks stopped: a key for another release ([`Error::KeyWrongRelease`]), a delivery forged,
//! re-signed or addressed to another device or chain ([`Error::KeyRefused`]), endless data (the
//! body is read up to [`MAX_KEY_RESPONSE`]).

use std::time::Duration;

use alloy_primitives::B256;
use otaledger_core::key_delivery::{KeyDelivery, Recipient};
use otaledger_cpabe::SecretKey;

use super::RpcFuture;
use crate::{ApprovedUpdate, Error, Result};

/// Largest key-service response body read: the largest delivery `otaledger-key` allows (256 KiB
/// of ciphertext) plus its fixed fields, rounded up.
pub const MAX_KEY_RESPONSE: usize = otaledger_core::key_delivery::MAX_CIPHERTEXT_LEN + 4096;

/// Default time one key-service request may take, connection to last body byte
/// ([`HttpKeyService::with_timeout`]): 30 s.
pub const DEFAULT_KEY_SERVICE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a key service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAnswer {
    /// `200`: the encoded delivery (untrusted until [`fetch_key`] checked it).
    Delivered(Vec<u8>),
    /// `404`: no key issued for this (release, device) yet.
    NotIssued,
}

/// A key service, behind a trait so tests inject malicious ones.
pub trait KeyService: Send + Sync {
    /// The delivery of `device`'s key for `release`.
    fn key(&self, release: B256, device: u64) -> RpcFuture<'_, KeyAnswer>;
}

/// `GET <base>/v1/keys/<release>/<device>`.
pub fn key_url(base: &url::Url, release: B256, device: u64) -> String {
    format!(
        "{}/v1/keys/{release:#x}/{device}",
        base.as_str().trim_end_matches('/')
    )
}

/// The key service over HTTP(S), responses bounded by [`MAX_KEY_RESPONSE`], no redirects.
#[derive(Debug, Clone)]
pub struct HttpKeyService {
    base: url::Url,
    http: reqwest::Client,
    timeout: Duration,
}

impl HttpKeyService {
    /// A service at `base` with [`DEFAULT_KEY_SERVICE_TIMEOUT`] per request.
    pub fn new(base: url::Url) -> std::result::Result<Self, String> {
        Self::with_timeout(base, DEFAULT_KEY_SERVICE_TIMEOUT)
    }

    /// A service at `base` with `timeout` per request (connection, response and body): a
    /// service holding the device longer counts as unavailable and the next one is asked. A zero
    /// timeout is refused.
    pub fn with_timeout(base: url::Url, timeout: Duration) -> std::result::Result<Self, String> {
        let http = super::http_client("key-service", timeout)?;
        Ok(Self {
            base,
            http,
            timeout,
        })
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn failed(&self, url: &str, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            format!(
                "{url}: no answer within {:?} (key-service timeout)",
                self.timeout
            )
        } else {
            format!("{url}: {e}")
        }
    }
}

impl KeyService for HttpKeyService {
    fn key(&self, release: B256, device: u64) -> RpcFuture<'_, KeyAnswer> {
        Box::pin(async move {
            let url = key_url(&self.base, release, device);
            let mut response = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| self.failed(&url, &e))?;
            match response.status().as_u16() {
                200 => {}
                // The body of an error is never read: only its status counts.
                404 => return Ok(KeyAnswer::NotIssued),
                status => return Err(format!("{url}: http status {status}")),
            }
            if let Some(len) = response.content_length()
                && len > MAX_KEY_RESPONSE as u64
            {
                return Err(format!(
                    "{url}: response of {len} bytes exceeds {MAX_KEY_RESPONSE}"
                ));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.failed(&url, &e))? {
                if body.len() + chunk.len() > MAX_KEY_RESPONSE {
                    return Err(format!("{url}: response exceeds {MAX_KEY_RESPONSE} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(KeyAnswer::Delivered(body))
        })
    }
}

/// Step 5: asks `services` in turn for the device's key for `update`, and returns the first
/// delivery that passes every check, opened with `identity` (the device's secp256k1 secret key).
///
/// A delivery that fails a check is a refusal ([`Error::KeyRefused`], [`Error::KeyWrongRelease`])
/// only if no other service delivers a good one; when every service answered 404, or the only
/// answers were 404s and transport failures, the result is [`Error::KeyNotIssued`].
pub async fn fetch_key(
    services: &[Box<dyn KeyService>],
    update: &ApprovedUpdate,
    device_index: u64,
    recipient: &Recipient,
    identity: &[u8; 32],
) -> Result<SecretKey> {
    let mut refused = None;
    let mut not_issued = 0;
    let mut reasons = Vec::new();
    for (i, service) in services.iter().enumerate() {
        match service.key(update.release_id, device_index).await {
            Ok(KeyAnswer::NotIssued) => {
                tracing::info!(service = i, "step 5: key not issued yet");
                not_issued += 1;
            }
            Ok(KeyAnswer::Delivered(bytes)) => match open(&bytes, update, recipient, identity) {
                Ok(key) => {
                    tracing::info!(service = i, "step 5: key delivery verified and opened");
                    return Ok(key);
                }
                Err(e) => {
                    tracing::warn!(service = i, error = %e, "step 5: key delivery refused");
                    refused = Some(e);
                }
            },
            Err(reason) => {
                tracing::warn!(service = i, %reason, "step 5: key service failed");
                reasons.push(reason);
            }
        }
    }
    if let Some(e) = refused {
        return Err(e);
    }
    if not_issued > 0 {
        return Err(Error::KeyNotIssued {
            release_id: update.release_id,
            device_index,
            answered: not_issued,
        });
    }
    Err(Error::KeyServiceUnavailable { reasons })
}

fn open(
    bytes: &[u8],
    update: &ApprovedUpdate,
    recipient: &Recipient,
    identity: &[u8; 32],
) -> Result<SecretKey> {
    let refused = |e: otaledger_core::Error| Error::KeyRefused {
        source: Box::new(e),
    };
    let delivery = KeyDelivery::decode(bytes).map_err(refused)?;
    // The signature, chain, registry and recipient are checked by `open`; the release here: a
    // validly signed key for another release is no key for this one.
    let key = delivery.open(recipient, identity).map_err(refused)?;
    if delivery.release_id != update.release_id {
        return Err(Error::KeyWrongRelease {
            expected: update.release_id,
            got: delivery.release_id,
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_service_that_never_answers_is_abandoned_at_the_configured_timeout() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base: url::Url = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                held.push(stream);
            }
        });
        let service =
            HttpKeyService::with_timeout(base.clone(), Duration::from_millis(200)).unwrap();
        assert_eq!(service.timeout(), Duration::from_millis(200));
        let err = service.key(B256::ZERO, 1).await.unwrap_err();
        assert!(err.contains("no answer within 200ms"), "{err}");
        silent.abort();

        assert_eq!(
            HttpKeyService::new(base.clone()).unwrap().timeout(),
            DEFAULT_KEY_SERVICE_TIMEOUT
        );
        let zero = HttpKeyService::with_timeout(base, Duration::ZERO).unwrap_err();
        assert!(zero.contains("above zero"), "{zero}");
    }
}
