//! Where the manifest and approval of a release come from. They are untrusted wherever they come
//! from: [`crate::client::Client::check`] accepts them only if the manifest hashes to a release
//! id whose release word is proven, and the approval's signatures recover to the proven signer
//! set. A source can at worst withhold a release (the device then reports nothing newer than it
//! could check: [`crate::Error::ReleaseUnavailable`]); the updater asks the next source when one's
//! answer is refused ([`crate::client::Updater::run_once`]).
//!
//! [`HttpRpc`] is a source: it finds the `ReleasePublished` log of (model, version) with
//! `eth_getLogs` and decodes the manifest and approval from the publishing transaction's
//! calldata (`publishRelease(manifest, approval)`). Other sources (the indexer's
//! `/v1/devices/<index>/update`, a file) implement the same trait.

use std::{future::Future, pin::Pin};

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::{SolCall, SolEvent};
use serde::Deserialize;
use serde_json::json;

use super::HttpRpc;
use crate::{
    Approval, Manifest,
    contracts::registry::UpdateRegistry::{ReleasePublished, publishReleaseCall},
};

/// A source's answer.
pub type SourceFuture<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<(Manifest, Approval), String>> + Send + 'a>>;

/// Finds the manifest and approval of a release.
pub trait ReleaseSource: Send + Sync {
    /// The release `version` of `model_id` in `registry`.
    fn release(&self, registry: Address, model_id: u32, version: u64) -> SourceFuture<'_>;
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson {
    transaction_hash: B256,
}

#[derive(Deserialize)]
struct TxJson {
    input: Bytes,
}

/// How many logs of one (model, version) are looked at: a version is published once per
/// registry, so more means a lying endpoint.
const MAX_LOGS: usize = 4;

impl ReleaseSource for HttpRpc {
    fn release(&self, registry: Address, model_id: u32, version: u64) -> SourceFuture<'_> {
        Box::pin(async move {
            let topics = json!([
                ReleasePublished::SIGNATURE_HASH,
                null,
                B256::left_padding_from(&model_id.to_be_bytes()),
                B256::left_padding_from(&version.to_be_bytes()),
            ]);
            let logs = self
                .call(
                    "eth_getLogs",
                    json!([{"address": registry, "fromBlock": "0x0", "toBlock": "latest", "topics": topics}]),
                )
                .await?;
            let logs: Vec<LogJson> = serde_json::from_value(logs)
                .map_err(|e| format!("eth_getLogs: unexpected result: {e}"))?;
            if logs.is_empty() {
                return Err(format!(
                    "no ReleasePublished log of model {model_id} version {version}"
                ));
            }
            let mut last = String::new();
            for log in logs.iter().take(MAX_LOGS) {
                let tx = self
                    .call("eth_getTransactionByHash", json!([log.transaction_hash]))
                    .await?;
                let tx: TxJson = serde_json::from_value(tx)
                    .map_err(|e| format!("eth_getTransactionByHash: unexpected result: {e}"))?;
                match publishReleaseCall::abi_decode(&tx.input) {
                    Ok(call)
                        if call.manifest.modelId == model_id
                            && call.manifest.version == version =>
                    {
                        return Ok((call.manifest, call.approval));
                    }
                    Ok(_) => last = "the transaction publishes another release".into(),
                    Err(e) => {
                        last = format!(
                            "transaction {} is not a direct publishRelease call: {e}",
                            log.transaction_hash
                        )
                    }
                }
            }
            Err(last)
        })
    }
}
