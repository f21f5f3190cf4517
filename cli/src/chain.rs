//! Which chain and contracts a command talks to, providers, sending
//! transactions, and decoding reverts into the contracts' custom errors.

use std::path::{Path, PathBuf};

use alloy::{
    network::{Ethereum, EthereumWallet},
    primitives::{Address, B256},
    providers::{DynProvider, PendingTransactionBuilder, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
use otaledger_core::{
    Deployment,
    bindings::{
        market::UpdateMarket::UpdateMarketErrors, registry::UpdateRegistry::UpdateRegistryErrors,
    },
};
use serde::Serialize;
use url::Url;

use crate::{Error, Result};

/// Where the chain is: `--rpc-url`, `--chain`, `--deployments`.
#[derive(Debug, Clone, Default)]
pub struct ChainOptions {
    /// JSON-RPC endpoint.
    pub rpc_url: Option<Url>,
    /// Chain id (checked against the node when both are given).
    pub chain: Option<u64>,
    /// Directory of `<chain-id>.json` deployment files.
    pub deployments: PathBuf,
}

/// A resolved chain: its id, its contracts and (if given) its node.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The deployment (chain id, registry, market, deployment block).
    pub deployment: Deployment,
    /// The node, when `--rpc-url` was given.
    pub rpc_url: Option<Url>,
}

impl ChainOptions {
    /// Resolves the chain: the node's chain id (checked against `--chain`), or
    /// `--chain` alone for offline commands; then the deployment file.
    pub async fn resolve(&self) -> Result<Chain> {
        let chain_id = match (&self.rpc_url, self.chain) {
            (Some(url), given) => {
                let provider = ProviderBuilder::new().connect_http(url.clone());
                let node = provider.get_chain_id().await.map_err(|e| Error::Rpc {
                    during: format!("asking {url} for its chain id"),
                    reason: e.to_string(),
                })?;
                if let Some(given) = given
                    && given != node
                {
                    return Err(Error::ChainMismatch { given, node });
                }
                node
            }
            (None, Some(id)) => id,
            (None, None) => return Err(Error::NoChain),
        };
        let deployment = Deployment::load(&self.deployments, chain_id)?;
        Ok(Chain {
            deployment,
            rpc_url: self.rpc_url.clone(),
        })
    }
}

impl Chain {
    /// The node's URL, or [`Error::NoRpc`].
    pub fn rpc(&self) -> Result<&Url> {
        self.rpc_url.as_ref().ok_or(Error::NoRpc)
    }

    /// A read-only provider.
    pub fn reader(&self) -> Result<DynProvider> {
        Ok(ProviderBuilder::new()
            .connect_http(self.rpc()?.clone())
            .erased())
    }

    /// A provider that signs with `wallet`.
    pub fn signer(&self, wallet: &PrivateKeySigner) -> Result<DynProvider> {
        Ok(ProviderBuilder::new()
            .wallet(EthereumWallet::from(wallet.clone()))
            .connect_http(self.rpc()?.clone())
            .erased())
    }

    /// The registry's address.
    pub fn registry(&self) -> Address {
        self.deployment.registry
    }

    /// The market's address.
    pub fn market(&self) -> Address {
        self.deployment.market
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.deployment.chain_id
    }
}

/// The contract's custom error in `err`, spelled with its values, e.g.
/// `UpdateRegistryVersionNotIncreasing { modelId: 3, latest: 7, given: 7 }`.
pub fn decoded_revert(err: &alloy::contract::Error) -> Option<String> {
    /// `Enum(Variant { .. })` → `Variant { .. }` (the enum's Debug wraps the error's).
    fn unwrap_variant(debug: String) -> String {
        match debug.split_once('(') {
            Some((_, inner)) if debug.ends_with(')') => inner[..inner.len() - 1].to_owned(),
            _ => debug,
        }
    }
    if let Some(e) = err.as_decoded_interface_error::<UpdateRegistryErrors>() {
        return Some(unwrap_variant(format!("{e:?}")));
    }
    if let Some(e) = err.as_decoded_interface_error::<UpdateMarketErrors>() {
        return Some(unwrap_variant(format!("{e:?}")));
    }
    None
}

/// A contract error: a decoded revert, or an RPC failure.
pub fn contract_error(during: &str, err: alloy::contract::Error) -> Error {
    match decoded_revert(&err) {
        Some(error) => Error::Reverted {
            during: during.to_owned(),
            error,
        },
        None => Error::Rpc {
            during: during.to_owned(),
            reason: err.to_string(),
        },
    }
}

/// A mined transaction.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mined {
    /// Transaction hash.
    pub tx: B256,
    /// Block it was mined in.
    pub block: u64,
    /// Gas used.
    pub gas_used: u64,
}

/// Waits for a sent transaction; a failed send is decoded into the contract's error.
pub async fn mined(
    during: &str,
    pending: std::result::Result<PendingTransactionBuilder<Ethereum>, alloy::contract::Error>,
) -> Result<(Mined, TransactionReceipt)> {
    let pending = pending.map_err(|e| contract_error(during, e))?;
    let receipt = pending.get_receipt().await.map_err(|e| Error::Rpc {
        during: format!("{during} (waiting for the receipt)"),
        reason: e.to_string(),
    })?;
    if !receipt.status() {
        return Err(Error::Reverted {
            during: during.to_owned(),
            error: format!("transaction {} reverted", receipt.transaction_hash),
        });
    }
    Ok((
        Mined {
            tx: receipt.transaction_hash,
            block: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
        },
        receipt,
    ))
}

/// The deployment directory default: `./deployments`.
pub fn default_deployments() -> PathBuf {
    Path::new("deployments").to_owned()
}
