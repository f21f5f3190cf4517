//! Integration test against a real anvil: deploy both contracts at their
//! CREATE2 addresses, register a manufacturer with a 2-of-3 signer set,
//! provision and claim devices, publish a release with two k256 signatures,
//! purchase it, withdraw after the refund window, and decode reverts into the
//! contracts' typed custom errors.

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use otaledger_core::{
    bindings::{
        market::UpdateMarket::{self, UpdateMarketErrors},
        registry::{
            IUpdateRegistry::Manifest,
            UpdateRegistry::{self, UpdateRegistryErrors},
        },
    },
    deploy::{self, DEFAULT_REFUND_WINDOW, DEFAULT_SALT},
    merkle::{DeviceLeaf, DeviceTree, verify_proof},
    signing::{Claim, RaiseFloor, SignerSet, registry_domain, release_id, sign_compact},
    spawn_anvil,
};

/// Sends a contract call and waits for its receipt.
macro_rules! mined {
    ($call:expr) => {
        $call.send().await.unwrap().get_receipt().await.unwrap()
    };
}

/// The error of a call that must revert (return types have no `Debug`, so no `unwrap_err`).
fn reverted<T>(result: Result<T, alloy::contract::Error>) -> alloy::contract::Error {
    match result {
        Ok(_) => panic!("the call succeeded, expected a revert"),
        Err(e) => e,
    }
}

const PRICE: u128 = 10_000_000_000_000_000; // 0.01 ETH

fn manifest(model_id: u32, version: u64, expiry: u64) -> Manifest {
    Manifest {
        modelId: model_id,
        version,
        bundleSha256: keccak256(b"bundle"),
        bundleSize: 1_234_567,
        bundleCid: Bytes::from_static(b"\x01\x55\x12\x20bundle-cid-bytes-for-the-test-0123"),
        imageSha256: keccak256(b"image"),
        price: PRICE,
        paymentToken: Address::ZERO,
        policyId: keccak256(b"model:thermo-x and release:2"),
        expiry,
        metadataHash: B256::ZERO,
    }
}

#[tokio::test]
async fn publish_and_purchase_round_on_anvil() {
    let anvil = spawn_anvil().unwrap();
    let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
    let owner: PrivateKeySigner = anvil.keys()[1].clone().into();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer.clone()))
        .connect_http(anvil.endpoint_url());
    let owner_provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(owner.clone()))
        .connect_http(anvil.endpoint_url());

    // Deterministic deployment: the addresses are known before deploying.
    let deployed = deploy::deploy(&provider, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, "test")
        .await
        .unwrap();
    let d = &deployed.deployment;
    assert_eq!(
        (d.registry, d.market),
        deploy::addresses(DEFAULT_SALT, DEFAULT_REFUND_WINDOW)
    );
    assert_eq!(d.chain_id, 31337);
    assert!(deployed.registry_gas > 0 && deployed.market_gas > 0);
    // Deploying again keeps what is there.
    let again = deploy::deploy(&provider, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, "test")
        .await
        .unwrap();
    assert_eq!((again.registry_gas, again.market_gas), (0, 0));

    let registry = UpdateRegistry::new(d.registry, &provider);
    let market = UpdateMarket::new(d.market, &owner_provider);
    let domain = registry_domain(d.chain_id, d.registry);
    assert_eq!(
        registry.DOMAIN_SEPARATOR().call().await.unwrap(),
        domain.separator()
    );

    // A manufacturer with a 2-of-3 signer set.
    let keys: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    let set = SignerSet::new(keys.iter().map(|k| k.address()).collect(), 2).unwrap();
    let receipt = mined!(registry.registerManufacturer(
        "Acme".into(),
        Address::ZERO,
        Address::ZERO,
        set.signers().to_vec(),
        2,
        "bafyparams".into(),
    ));
    let registered = receipt
        .decoded_log::<UpdateRegistry::ManufacturerRegistered>()
        .unwrap();
    let mfr = registered.manufacturerId;
    assert_eq!(registered.operator, deployer.address());
    assert_eq!(registered.signers, set.signers());
    assert_eq!(
        registry
            .signersHash(set.signers().to_vec(), 2)
            .call()
            .await
            .unwrap(),
        registry.manufacturer(mfr).call().await.unwrap().signersHash
    );

    let receipt = mined!(registry.defineModel(mfr, "thermo-x".into(), 1));
    let model_id = receipt
        .decoded_log::<UpdateRegistry::ModelDefined>()
        .unwrap()
        .modelId;

    // Provision a batch of four devices; the owner claims two with the devices' own signatures.
    let device_keys: Vec<PrivateKeySigner> = (0..4).map(|_| PrivateKeySigner::random()).collect();
    // Another batch lands between building the tree and provisioning it: leaves name
    // positions in the batch, so the tree stays valid.
    let predicted_first = registry.counters().call().await.unwrap().devices;
    let leaves: Vec<DeviceLeaf> = device_keys
        .iter()
        .enumerate()
        .map(|(i, k)| DeviceLeaf {
            position: i as u64,
            device: k.address(),
            model_id,
        })
        .collect();
    let tree = DeviceTree::new(&leaves).unwrap();
    mined!(registry.provisionDevices(mfr, B256::repeat_byte(1), 5, String::new()));
    let receipt = mined!(registry.provisionDevices(
        mfr,
        tree.root(),
        leaves.len() as u32,
        "bafyleaves".into()
    ));
    let batch = receipt
        .decoded_log::<UpdateRegistry::DevicesProvisioned>()
        .unwrap();
    assert_eq!(batch.firstIndex, predicted_first + 5);
    let index = |i: usize| batch.firstIndex + i as u64;
    for (i, leaf) in leaves.iter().enumerate().take(2) {
        let proof = tree.proof(i).unwrap();
        assert!(verify_proof(leaf, &proof, tree.root()));
        let claim = Claim {
            owner: owner.address(),
            deviceIndex: index(i),
        };
        let signature = sign_compact(&device_keys[i], claim.eip712_signing_hash(&domain)).unwrap();
        mined!(registry.claimDevice(
            batch.batchId,
            index(i),
            leaf.device,
            model_id,
            owner.address(),
            proof,
            signature.to_vec().into(),
        ));
        assert_eq!(
            registry.device(index(i)).call().await.unwrap().owner,
            owner.address()
        );
    }

    // Publish with two of the three signatures; anyone (here the deployer) submits.
    let now = provider
        .get_block_by_number(Default::default())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let m = manifest(model_id, 2, now + 365 * 24 * 3600);
    let approval = set
        .approve_typed(&m, &domain, &[&keys[0], &keys[2]])
        .unwrap();
    let receipt = mined!(registry.publishRelease(m.clone(), approval));
    let published = receipt
        .decoded_log::<UpdateRegistry::ReleasePublished>()
        .unwrap();
    let id = release_id(&m);
    assert_eq!(published.releaseId, id);
    assert_eq!(registry.releaseId(m.clone()).call().await.unwrap(), id);
    assert_eq!(published.manifest.bundleCid, m.bundleCid);
    let status = registry.release(id).call().await.unwrap();
    assert_eq!(
        (status.version, status.modelId, status.revokedAt),
        (2, model_id, 0u64.try_into().unwrap())
    );

    // One signature is not enough, and a version must increase: typed custom errors.
    let m3 = manifest(model_id, 3, now + 3600);
    let one = set.approve_typed(&m3, &domain, &[&keys[1]]);
    assert!(
        one.is_err(),
        "the client refuses to build an approval below the threshold"
    );
    let mut short = set
        .approve_typed(&m3, &domain, &[&keys[0], &keys[1]])
        .unwrap();
    short.signatures = short.signatures.slice(..64);
    let err = reverted(registry.publishRelease(m3, short).call().await);
    match err.as_decoded_interface_error::<UpdateRegistryErrors>() {
        Some(UpdateRegistryErrors::UpdateRegistryNotEnoughSignatures(e)) => {
            assert_eq!((e.given, e.threshold), (U256::from(1), U256::from(2)));
        }
        other => panic!("expected UpdateRegistryNotEnoughSignatures, got {other:?} ({err})"),
    }
    // Raw calldata shaped as an attacker shapes it: the approval's signer count patched to 2^251 + 3 (it once
    // wrapped `shl(5, n)` and passed the threshold without keys) is refused with the typed error naming it.
    let m4 = manifest(model_id, 3, now + 3600);
    let approval = set
        .approve_typed(&m4, &domain, &[&keys[0], &keys[1]])
        .unwrap();
    let mut cd = registry.publishRelease(m4, approval).calldata().to_vec();
    let word = |cd: &[u8], at: usize| U256::from_be_slice(&cd[at..at + 32]).to::<usize>();
    let approval_at = 4 + word(&cd, 4 + 32);
    let count_at = approval_at + word(&cd, approval_at);
    let wrapped: U256 = (U256::from(1) << 251) + U256::from(3);
    cd[count_at..count_at + 32].copy_from_slice(&wrapped.to_be_bytes::<32>());
    let tx = TransactionRequest::default()
        .with_to(d.registry)
        .with_input(Bytes::from(cd));
    let err = alloy::contract::Error::from(provider.call(tx).await.unwrap_err());
    match err.as_decoded_interface_error::<UpdateRegistryErrors>() {
        Some(UpdateRegistryErrors::UpdateRegistryInvalidSignerSet(e)) => {
            assert_eq!((e.signerCount, e.threshold), (wrapped, U256::from(2)));
        }
        other => panic!("expected UpdateRegistryInvalidSignerSet, got {other:?} ({err})"),
    }
    let again = set
        .approve_typed(&m, &domain, &[&keys[1], &keys[2]])
        .unwrap();
    let err = reverted(registry.publishRelease(m.clone(), again).call().await);
    match err.as_decoded_interface_error::<UpdateRegistryErrors>() {
        Some(UpdateRegistryErrors::UpdateRegistryVersionNotIncreasing(e)) => {
            assert_eq!((e.modelId, e.latest, e.given), (model_id, 2, 2));
        }
        other => panic!("expected UpdateRegistryVersionNotIncreasing, got {other:?} ({err})"),
    }

    // Raising the floor takes the threshold too.
    let floor = RaiseFloor {
        modelId: model_id,
        minVersion: 2,
    };
    let approval = set
        .approve_typed(&floor, &domain, &[&keys[1], &keys[2]])
        .unwrap();
    mined!(registry.raiseFloor(model_id, 2, approval));
    assert_eq!(registry.model(model_id).call().await.unwrap().minVersion, 2);

    // The owner buys the release for both claimed devices, paying exactly price × 2.
    let devices = vec![index(0), index(1)];
    let receipt = mined!(
        market
            .purchase(m.clone().into(), devices.clone())
            .value(U256::from(PRICE * 2))
    );
    let purchased = receipt.decoded_log::<UpdateMarket::Purchased>().unwrap();
    assert_eq!(
        (purchased.releaseId, purchased.buyer, purchased.amount),
        (id, owner.address(), U256::from(PRICE * 2))
    );
    assert!(market.isEntitled(id, index(0)).call().await.unwrap());
    assert!(!market.isEntitled(id, index(2)).call().await.unwrap());
    assert_eq!(
        market.escrowOf(id).call().await.unwrap(),
        U256::from(PRICE * 2)
    );

    // Buying again for an entitled device reverts with the device named.
    let err = reverted(
        market
            .purchase(m.clone().into(), vec![index(0)])
            .value(U256::from(PRICE))
            .call()
            .await,
    );
    match err.as_decoded_interface_error::<UpdateMarketErrors>() {
        Some(UpdateMarketErrors::UpdateMarketAlreadyEntitled(e)) => {
            assert_eq!((e.releaseId, e.deviceIndex), (id, index(0)))
        }
        other => panic!("expected UpdateMarketAlreadyEntitled, got {other:?} ({err})"),
    }
    // An unclaimed device cannot be bought for.
    let err = reverted(
        market
            .purchase(m.clone().into(), vec![index(3)])
            .value(U256::from(PRICE))
            .call()
            .await,
    );
    assert!(
        err.as_decoded_interface_error::<UpdateRegistryErrors>()
            .is_some()
            || err
                .as_decoded_interface_error::<UpdateMarketErrors>()
                .is_some(),
        "{err}"
    );

    // Withdrawing before the refund window ends reverts; afterwards the payee is paid.
    let market_by_deployer = UpdateMarket::new(d.market, &provider);
    let err = reverted(market_by_deployer.withdraw(m.clone().into()).call().await);
    assert!(
        matches!(
            err.as_decoded_interface_error::<UpdateMarketErrors>(),
            Some(UpdateMarketErrors::UpdateMarketNotSettled(_))
        ),
        "{err}"
    );
    provider
        .raw_request::<_, serde_json::Value>(
            "evm_increaseTime".into(),
            (DEFAULT_REFUND_WINDOW + 1,),
        )
        .await
        .unwrap();
    provider
        .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
        .await
        .unwrap();
    let before = provider.get_balance(deployer.address()).await.unwrap();
    let receipt = mined!(market_by_deployer.withdraw(m.clone().into()));
    let withdrawn = receipt.decoded_log::<UpdateMarket::Withdrawn>().unwrap();
    assert_eq!(
        (withdrawn.payee, withdrawn.amount),
        (deployer.address(), U256::from(PRICE * 2))
    );
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    assert_eq!(
        provider.get_balance(deployer.address()).await.unwrap(),
        before + U256::from(PRICE * 2) - fee
    );
    assert_eq!(provider.get_balance(d.market).await.unwrap(), U256::ZERO);
}

/// A manifest with every field random (bytes of random length).
fn random_manifest(rng: &mut impl rand_chacha::rand_core::RngCore) -> Manifest {
    let mut word = || {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        B256::from(b)
    };
    let (a, b, c, d, e, f) = (word(), word(), word(), word(), word(), word());
    let cid_len = (a[0] % 80) as usize;
    Manifest {
        modelId: u32::from_be_bytes(a[1..5].try_into().unwrap()),
        version: u64::from_be_bytes(a[5..13].try_into().unwrap()),
        bundleSha256: b,
        bundleSize: u64::from_be_bytes(a[13..21].try_into().unwrap()),
        bundleCid: Bytes::copy_from_slice(
            &[c.as_slice(), d.as_slice(), e.as_slice()].concat()[..cid_len],
        ),
        imageSha256: c,
        price: u128::from_be_bytes(d[..16].try_into().unwrap()),
        paymentToken: Address::from_slice(&e[..20]),
        policyId: f,
        expiry: u64::from_be_bytes(a[21..29].try_into().unwrap()),
        metadataHash: if a[29] & 1 == 0 { B256::ZERO } else { d },
    }
}

/// Random manifests: the release id (struct hash) and the EIP-712 digest the
/// client computes equal the deployed registry's, through the `manifest.json`
/// form; then a real sealed bundle's manifest goes through `manifest.json`,
/// two offline signature files and an assembled approval into `publishRelease`.
#[tokio::test]
async fn manifest_files_agree_with_the_contract() {
    use otaledger_core::{
        bundle::{BundleSpec, SealOptions, default_policy, seal},
        manifest::{ManifestBuilder, ManifestFile, SignatureFile},
    };
    use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

    let anvil = spawn_anvil().unwrap();
    let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer.clone()))
        .connect_http(anvil.endpoint_url());
    let deployed = deploy::deploy(&provider, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, "test")
        .await
        .unwrap();
    let d = &deployed.deployment;
    let registry = UpdateRegistry::new(d.registry, &provider);
    let separator = registry.DOMAIN_SEPARATOR().call().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");

    let mut rng = ChaCha20Rng::seed_from_u64(0x07a1);
    for i in 0..48 {
        let m = random_manifest(&mut rng);
        let file = ManifestFile {
            chain_id: d.chain_id,
            registry: d.registry,
            policy: format!(
                "\"model:{}\" and \"release:{}/{}\"",
                m.modelId, m.modelId, m.version
            ),
            manifest: m,
        };
        let mut file = file;
        file.manifest.policyId = otaledger_core::bundle::policy_id(
            &otaledger_core::bundle::parse_policy(&file.policy).unwrap(),
        );
        file.store(&path).unwrap();
        let loaded = ManifestFile::load(&path).unwrap();
        assert_eq!(
            loaded, file,
            "manifest {i} round-trips through manifest.json"
        );
        let on_chain = registry
            .releaseId(loaded.manifest.clone())
            .call()
            .await
            .unwrap();
        assert_eq!(loaded.release_id(), on_chain, "manifest {i}");
        let digest =
            keccak256([&[0x19, 0x01][..], separator.as_slice(), on_chain.as_slice()].concat());
        assert_eq!(loaded.digest(), digest, "manifest {i}");
    }

    // A real release: seal, build the manifest, sign offline twice, publish.
    let keys: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    let set = SignerSet::new(keys.iter().map(|k| k.address()).collect(), 2).unwrap();
    let receipt = mined!(registry.registerManufacturer(
        "Acme".into(),
        Address::ZERO,
        Address::ZERO,
        set.signers().to_vec(),
        2,
        String::new(),
    ));
    let mfr = receipt
        .decoded_log::<UpdateRegistry::ManufacturerRegistered>()
        .unwrap()
        .manufacturerId;
    let receipt = mined!(registry.defineModel(mfr, "thermo-x".into(), 1));
    let model_id = receipt
        .decoded_log::<UpdateRegistry::ModelDefined>()
        .unwrap()
        .modelId;
    let (params, _) = otaledger_cpabe::setup(&mut rng);
    let policy = default_policy(model_id, 3);
    let target = otaledger_core::bundle::ReleaseTarget {
        chain_id: d.chain_id,
        registry: d.registry,
        model_id,
        version: 3,
    };
    let image = vec![0xabu8; 5000];
    let sealed = seal(
        &params,
        &BundleSpec {
            target,
            policy: &policy,
            options: SealOptions::default(),
        },
        &image[..],
        5000,
        std::io::sink(),
        &mut rng,
    )
    .unwrap();
    let manifest = ManifestBuilder::new(&sealed, b"\x01\x55\x12\x20cid".to_vec())
        .price(PRICE)
        .expiry(u64::MAX / 2)
        .build();
    let file = ManifestFile::new(&sealed, manifest);
    file.store(&path).unwrap();
    let loaded = ManifestFile::load(&path).unwrap();
    let mut sig_files = Vec::new();
    for (n, key) in [&keys[2], &keys[0]].iter().enumerate() {
        let sig_path = dir.path().join(format!("sig{n}.json"));
        loaded.sign(key).unwrap().store(&sig_path).unwrap();
        sig_files.push(SignatureFile::load(&sig_path).unwrap());
    }
    let approval = loaded.approval(&set, &sig_files).unwrap();
    let receipt = mined!(registry.publishRelease(loaded.manifest.clone(), approval));
    let published = receipt
        .decoded_log::<UpdateRegistry::ReleasePublished>()
        .unwrap();
    assert_eq!(published.releaseId, loaded.release_id());
    assert_eq!(published.manifest.policyId, sealed.header.policy_id());
    assert_eq!(published.manifest.bundleSha256, sealed.bundle_sha256);
}
