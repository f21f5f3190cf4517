//! Deploying both contracts at deterministic addresses through the CREATE2
//! deployer (the same addresses `script/Deploy.s.sol` gives).

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolValue,
};

use crate::{
    CREATE2_DEPLOYER, Deployment, Error, Result,
    bindings::{market::UpdateMarket, registry::UpdateRegistry},
    create2_address,
};

/// The CREATE2 salt of the canonical deployment (`keccak256("otaledger.v1")`).
pub const DEFAULT_SALT: B256 =
    alloy::primitives::b256!("0xd73a1223ae7be0623dfa0e6602936e7192f89355ef10359de428119810a52831");

/// Default refund window of the market: 7 days.
pub const DEFAULT_REFUND_WINDOW: u64 = 7 * 24 * 60 * 60;

/// What [`deploy`] did.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The resulting deployment record.
    pub deployment: Deployment,
    /// Gas used by the registry's deployment (0 if it was already there).
    pub registry_gas: u64,
    /// Gas used by the market's deployment (0 if it was already there).
    pub market_gas: u64,
}

/// The market's init code: creation bytecode + ABI-encoded constructor
/// arguments. (The registry has no constructor arguments: its init code is
/// `UpdateRegistry::BYTECODE`.)
pub fn market_init_code(registry: Address, refund_window: u64) -> Bytes {
    let mut code = UpdateMarket::BYTECODE.to_vec();
    code.extend_from_slice(&(registry, U256::from(refund_window)).abi_encode_params());
    Bytes::from(code)
}

/// The addresses [`deploy`] gives for `salt` and `refund_window`, on any chain.
pub fn addresses(salt: B256, refund_window: u64) -> (Address, Address) {
    let registry = create2_address(salt, &UpdateRegistry::BYTECODE);
    (
        registry,
        create2_address(salt, &market_init_code(registry, refund_window)),
    )
}

async fn create2<P: Provider>(
    provider: &P,
    salt: B256,
    init_code: &[u8],
    what: &'static str,
) -> Result<(Address, u64, Option<u64>)> {
    let address = create2_address(salt, init_code);
    let rpc = |e: &dyn std::fmt::Display| Error::Rpc {
        during: what,
        reason: e.to_string(),
    };
    if !provider
        .get_code_at(address)
        .await
        .map_err(|e| rpc(&e))?
        .is_empty()
    {
        return Ok((address, 0, None));
    }
    if provider
        .get_code_at(CREATE2_DEPLOYER)
        .await
        .map_err(|e| rpc(&e))?
        .is_empty()
    {
        return Err(Error::NoCreate2Deployer {
            address: CREATE2_DEPLOYER,
        });
    }
    let mut input = salt.to_vec();
    input.extend_from_slice(init_code);
    let tx = TransactionRequest::default()
        .with_to(CREATE2_DEPLOYER)
        .with_input(Bytes::from(input));
    let receipt = provider
        .send_transaction(tx)
        .await
        .map_err(|e| rpc(&e))?
        .get_receipt()
        .await
        .map_err(|e| rpc(&e))?;
    if !receipt.status()
        || provider
            .get_code_at(address)
            .await
            .map_err(|e| rpc(&e))?
            .is_empty()
    {
        return Err(Error::DeploymentFailed {
            contract: what,
            tx: receipt.transaction_hash,
        });
    }
    Ok((address, receipt.gas_used, receipt.block_number))
}

/// Deploys `UpdateRegistry` and `UpdateMarket` (with `refund_window` seconds)
/// through the CREATE2 deployer; a contract already at its address is kept.
pub async fn deploy<P: Provider>(
    provider: &P,
    salt: B256,
    refund_window: u64,
    commit: &str,
) -> Result<Deployed> {
    let chain_id = provider.get_chain_id().await.map_err(|e| Error::Rpc {
        during: "eth_chainId",
        reason: e.to_string(),
    })?;
    let (registry, registry_gas, registry_block) =
        create2(provider, salt, &UpdateRegistry::BYTECODE, "UpdateRegistry").await?;
    let (market, market_gas, market_block) = create2(
        provider,
        salt,
        &market_init_code(registry, refund_window),
        "UpdateMarket",
    )
    .await?;
    let deployment_block = match registry_block.or(market_block) {
        Some(block) => block,
        None => provider.get_block_number().await.map_err(|e| Error::Rpc {
            during: "eth_blockNumber",
            reason: e.to_string(),
        })?,
    };
    Ok(Deployed {
        deployment: Deployment {
            chain_id,
            registry,
            market,
            deployment_block,
            salt,
            commit: commit.to_owned(),
        },
        registry_gas,
        market_gas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_salt_is_the_hash_of_its_name() {
        assert_eq!(DEFAULT_SALT, alloy::primitives::keccak256("otaledger.v1"));
    }

    #[test]
    fn addresses_depend_on_salt_and_window_only() {
        let (r1, m1) = addresses(DEFAULT_SALT, DEFAULT_REFUND_WINDOW);
        assert_eq!(addresses(DEFAULT_SALT, DEFAULT_REFUND_WINDOW), (r1, m1));
        let (r2, m2) = addresses(B256::ZERO, DEFAULT_REFUND_WINDOW);
        assert_ne!(r1, r2);
        assert_ne!(m1, m2);
        assert_ne!(addresses(DEFAULT_SALT, 60).1, m1);
    }
}
