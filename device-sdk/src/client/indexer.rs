//! The indexer as a release source: `GET <base>/v1/models/<model>/releases/<version>`
//! (docs/indexer.md) answers the manifest and approval of one release, ABI-encoded as the
//! registry received them, with the chain id and registry the indexer mirrors.
//!
//! The indexer is untrusted like every source: the pipeline proves the manifest's release id on
//! chain (step 2) and recovers the approval's signatures to the proven signer set (step 4). This
//! source additionally refuses, before the pipeline sees it, an answer that
//! - is not for the device's chain id and registry ([`SourceError::WrongRegistry`]);
//! - is another release than the (model, version) asked for, or names a release id that is not
//!   its manifest's EIP-712 hash ([`SourceError::WrongRelease`]);
//! - is longer than [`MAX_INDEXER_RESPONSE`], announced or streamed; it is not read past the
//!   bound ([`SourceError::TooLarge`]);
//! - takes longer than its timeout, connection to last byte ([`SourceError::Timeout`]);
//! - does not decode ([`SourceError::Malformed`]).
//!
//! Any refusal makes [`super::Updater`] ask the next source (the RPC endpoints' logs).

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::SolValue;
use serde::Deserialize;

use super::{ReleaseSource, SourceError, SourceFuture};
use crate::{Approval, Manifest};

/// Largest indexer answer read: 64 KiB. An answer is about 3 KiB for a 3-signer approval and
/// under 12 KiB for the registry's maximum of 32 signers (hex doubles the ABI bytes); anything
/// longer is endless data.
pub const MAX_INDEXER_RESPONSE: usize = 64 * 1024;

/// Default time one indexer request may take, connection to last body byte: 10 s
/// ([`IndexerSource::with_limits`]).
pub const DEFAULT_INDEXER_TIMEOUT: Duration = Duration::from_secs(10);

/// `<base>/v1/models/<model>/releases/<version>`.
pub fn release_url(base: &url::Url, model_id: u32, version: u64) -> String {
    format!(
        "{}/v1/models/{model_id}/releases/{version}",
        base.as_str().trim_end_matches('/')
    )
}

/// The indexer's answer (`otaledger-indexer`'s `api::model_release`).
#[derive(Deserialize)]
struct Answer {
    chain_id: u64,
    registry: Address,
    model_id: u32,
    version: u64,
    release_id: B256,
    manifest: Bytes,
    approval: Bytes,
}

/// An indexer over HTTP(S) as a [`ReleaseSource`]: bounded answers, a timeout, no redirects.
#[derive(Debug, Clone)]
pub struct IndexerSource {
    base: url::Url,
    chain_id: u64,
    http: reqwest::Client,
    timeout: Duration,
    max_response: usize,
}

impl IndexerSource {
    /// The indexer at `base` (`http` or `https`) for a device on `chain_id`, with
    /// [`DEFAULT_INDEXER_TIMEOUT`] and [`MAX_INDEXER_RESPONSE`].
    pub fn new(base: url::Url, chain_id: u64) -> Result<Self, String> {
        Self::with_limits(
            base,
            chain_id,
            DEFAULT_INDEXER_TIMEOUT,
            MAX_INDEXER_RESPONSE,
        )
    }

    /// The indexer at `base` with `timeout` per request (connection, response and body) and
    /// answers of at most `max_response` bytes. A zero timeout or bound, or a scheme other than
    /// `http`/`https`, is refused.
    pub fn with_limits(
        base: url::Url,
        chain_id: u64,
        timeout: Duration,
        max_response: usize,
    ) -> Result<Self, String> {
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!(
                "indexer URL {} must be http or https",
                super::origin(&base)
            ));
        }
        if max_response == 0 {
            return Err("indexer response bound must be above zero".into());
        }
        let http = super::http_client("indexer", timeout)?;
        Ok(Self {
            base,
            chain_id,
            http,
            timeout,
            max_response,
        })
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn name(&self) -> String {
        format!("indexer {}", super::origin(&self.base))
    }

    /// A transport error, without the URL reqwest puts in its message (a base path can hold a
    /// key).
    fn transport(&self, e: reqwest::Error) -> SourceError {
        if e.is_timeout() {
            SourceError::Timeout {
                source_name: self.name(),
                timeout: self.timeout,
            }
        } else {
            SourceError::Unavailable {
                source_name: self.name(),
                reason: e.without_url().to_string(),
            }
        }
    }

    /// The answer's body, read up to the bound.
    async fn fetch(&self, model_id: u32, version: u64) -> Result<Vec<u8>, SourceError> {
        let url = release_url(&self.base, model_id, version);
        let mut response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        match response.status().as_u16() {
            200 => {}
            // The body of an error is never read: only its status counts.
            404 => {
                return Err(SourceError::NotFound {
                    source_name: self.name(),
                    model_id,
                    version,
                    reason: "404".into(),
                });
            }
            status => {
                return Err(SourceError::Unavailable {
                    source_name: self.name(),
                    reason: format!("http status {status}"),
                });
            }
        }
        let announced = response.content_length();
        let too_large = || SourceError::TooLarge {
            source_name: self.name(),
            max: self.max_response,
            announced,
        };
        if announced.is_some_and(|len| len > self.max_response as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > self.max_response {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Decodes `body` and checks it is release `version` of `model_id` in this device's
    /// deployment.
    fn decode(
        &self,
        body: &[u8],
        registry: Address,
        model_id: u32,
        version: u64,
    ) -> Result<(Manifest, Approval), SourceError> {
        let malformed = |reason: String| SourceError::Malformed {
            source_name: self.name(),
            reason,
        };
        let wrong = |answered: String| SourceError::WrongRelease {
            source_name: self.name(),
            requested_model: model_id,
            requested_version: version,
            answered,
        };
        let answer: Answer = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
        if answer.chain_id != self.chain_id || answer.registry != registry {
            return Err(SourceError::WrongRegistry {
                source_name: self.name(),
                requested: format!("registry {registry} on chain {}", self.chain_id),
                answered: format!("registry {} on chain {}", answer.registry, answer.chain_id),
            });
        }
        let manifest = Manifest::abi_decode(&answer.manifest)
            .map_err(|e| malformed(format!("manifest: {e}")))?;
        let approval = Approval::abi_decode(&answer.approval)
            .map_err(|e| malformed(format!("approval: {e}")))?;
        for (what, model, v) in [
            ("the answer", answer.model_id, answer.version),
            ("the manifest", manifest.modelId, manifest.version),
        ] {
            if (model, v) != (model_id, version) {
                return Err(wrong(format!("{what} of release {v} of model {model}")));
            }
        }
        let computed = crate::contracts::release_id(&manifest);
        if computed != answer.release_id {
            return Err(wrong(format!(
                "release id {} for a manifest whose id is {computed}",
                answer.release_id
            )));
        }
        Ok((manifest, approval))
    }
}

impl ReleaseSource for IndexerSource {
    fn release(&self, registry: Address, model_id: u32, version: u64) -> SourceFuture<'_> {
        Box::pin(async move {
            let body = self.fetch(model_id, version).await?;
            self.decode(&body, registry, model_id, version)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_under_the_base_whatever_its_trailing_slash() {
        for base in ["http://indexer:8080", "http://indexer:8080/"] {
            assert_eq!(
                release_url(&base.parse().unwrap(), 3, 10),
                "http://indexer:8080/v1/models/3/releases/10"
            );
        }
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let base: url::Url = "http://indexer/".parse().unwrap();
        let err = IndexerSource::with_limits(base.clone(), 1, Duration::ZERO, 1).unwrap_err();
        assert!(err.contains("timeout"), "{err}");
        let err = IndexerSource::with_limits(base, 1, Duration::from_secs(1), 0).unwrap_err();
        assert!(err.contains("bound"), "{err}");
        let err = IndexerSource::new("ftp://user:secret@indexer/".parse().unwrap(), 1).unwrap_err();
        assert!(err.contains("http or https"), "{err}");
        assert!(
            !err.contains("secret"),
            "credentials never reach errors: {err}"
        );
    }

    #[test]
    fn errors_name_the_origin_never_the_path_or_credentials() {
        let s = IndexerSource::new(
            "https://me:pw@idx.example/key/abc?token=t".parse().unwrap(),
            1,
        )
        .unwrap();
        assert_eq!(s.name(), "indexer https://idx.example:443");
    }
}
