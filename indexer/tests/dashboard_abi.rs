//! The dashboard's browser-side ABI (`dashboard/abi.js`) against the `sol!` bindings in core:
//! every function selector, signature, event topic and error selector the page uses equals
//! the bindings' (and the error table is complete, so any revert of either contract is named),
//! and the page's encoder and decoder agree byte for byte with alloy's on the calls the page
//! makes, including the dynamic manifest. Malformed input and data are refused with
//! `AbiError`. The publish flow's parsers (`dashboard/publish.js`) read manifest files as the
//! CLI writes them, have wallets sign the manifest's digest, and refuse or read as the CLI
//! does thousands of mutated files. Runs `node` on the modules (no browser needed).

mod pagejs;

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, B256, Bytes, U256, address, b256},
    sol_types::{Eip712Domain, SolCall, SolError, SolEvent, SolValue},
};
use otaledger_core::{
    bindings::{
        demo_token::DemoToken,
        market::{IUpdateMarket::Permit as MarketPermit, IUpdateRegistry::Manifest, UpdateMarket},
        registry::{IUpdateRegistry as Reg, UpdateRegistry},
    },
    bundle::{default_policy, policy_id},
    manifest::ManifestFile,
};
use pagejs::{Rng, hex, node};
use serde_json::{Value, json};

alloy::sol! {
    /// The standard ERC-20 functions the page calls.
    interface IERC20 {
        function approve(address spender, uint256 amount) external returns (bool);
        function allowance(address owner, address spender) external view returns (uint256);
        function decimals() external view returns (uint8);
        function symbol() external view returns (string);
    }
}

fn tables() -> Value {
    node(
        "out({ functions: abi.FUNCTIONS, events: abi.EVENTS, errors: abi.ERRORS });",
        &json!(null),
    )
}

fn check_call<C: SolCall>(functions: &Value, name: &str) {
    let f = &functions[name];
    assert_eq!(f["signature"], C::SIGNATURE, "{name}: signature");
    assert_eq!(f["selector"], hex(C::SELECTOR), "{name}: selector");
}

#[test]
fn selectors_topics_and_errors_match_the_bindings() {
    let t = tables();
    let f = &t["functions"];
    check_call::<UpdateRegistry::deviceCall>(f, "device");
    check_call::<UpdateRegistry::manufacturerCall>(f, "manufacturer");
    check_call::<UpdateRegistry::releaseCall>(f, "release");
    check_call::<UpdateRegistry::releaseIdCall>(f, "releaseId");
    check_call::<UpdateRegistry::modelCall>(f, "model");
    check_call::<UpdateRegistry::publishReleaseCall>(f, "publishRelease");
    check_call::<UpdateRegistry::revokeReleaseCall>(f, "revokeRelease");
    check_call::<UpdateRegistry::raiseFloorCall>(f, "raiseFloor");
    check_call::<UpdateRegistry::rotateSignersCall>(f, "rotateSigners");
    check_call::<UpdateRegistry::updateManufacturerCall>(f, "updateManufacturer");
    check_call::<UpdateRegistry::signersHashCall>(f, "signersHash");
    check_call::<UpdateRegistry::checkDevicesCall>(f, "checkDevices");
    check_call::<UpdateRegistry::transferDeviceCall>(f, "transferDevice");
    check_call::<UpdateRegistry::claimDeviceCall>(f, "claimDevice");
    check_call::<UpdateRegistry::registerManufacturerCall>(f, "registerManufacturer");
    check_call::<UpdateRegistry::defineModelCall>(f, "defineModel");
    check_call::<UpdateRegistry::emergencyRevokeCall>(f, "emergencyRevoke");
    check_call::<UpdateMarket::purchaseCall>(f, "purchase");
    check_call::<UpdateMarket::claimRefundCall>(f, "claimRefund");
    check_call::<UpdateMarket::isEntitledCall>(f, "isEntitled");
    check_call::<IERC20::allowanceCall>(f, "allowance");
    check_call::<IERC20::approveCall>(f, "approve");
    check_call::<IERC20::decimalsCall>(f, "decimals");
    check_call::<IERC20::symbolCall>(f, "symbol");
    check_call::<UpdateMarket::purchaseWithPermitCall>(f, "purchaseWithPermit");
    check_call::<DemoToken::nameCall>(f, "name");
    check_call::<DemoToken::noncesCall>(f, "nonces");
    check_call::<DemoToken::permitCall>(f, "permit");
    check_call::<DemoToken::DOMAIN_SEPARATORCall>(f, "DOMAIN_SEPARATOR");
    check_call::<DemoToken::eip712DomainCall>(f, "eip712Domain");
    assert_eq!(
        f.as_object().unwrap().len(),
        30,
        "a function was added to abi.js without a check here"
    );

    let purchased = &t["events"]["Purchased"];
    assert_eq!(purchased["signature"], UpdateMarket::Purchased::SIGNATURE);
    assert_eq!(
        purchased["topic"],
        hex(UpdateMarket::Purchased::SIGNATURE_HASH)
    );

    // Every custom error of both contracts, and nothing else but Error/Panic.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for (selectors, signatures) in [
        (
            UpdateRegistry::UpdateRegistryErrors::SELECTORS,
            UpdateRegistry::UpdateRegistryErrors::SIGNATURES,
        ),
        (
            UpdateMarket::UpdateMarketErrors::SELECTORS,
            UpdateMarket::UpdateMarketErrors::SIGNATURES,
        ),
    ] {
        for (s, sig) in selectors.iter().zip(signatures) {
            expected.insert(hex(s), (*sig).to_owned());
        }
    }
    expected.insert(
        hex(alloy::sol_types::Revert::SELECTOR),
        alloy::sol_types::Revert::SIGNATURE.into(),
    );
    expected.insert(
        hex(alloy::sol_types::Panic::SELECTOR),
        alloy::sol_types::Panic::SIGNATURE.into(),
    );
    let got: BTreeMap<String, String> = t["errors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, expected);
}

fn manifest() -> Manifest {
    Manifest {
        modelId: 7,
        version: 0x0102_0304_0506,
        bundleSha256: b256!("1111111111111111111111111111111111111111111111111111111111111111"),
        bundleSize: 262_144,
        // 36 bytes: the CID spans two words of the tail.
        bundleCid: Bytes::from(vec![0xab; 36]),
        imageSha256: B256::repeat_byte(0x22),
        price: 10_000_000_000_000_000,
        paymentToken: address!("5fbdb2315678afecb367f032d93f642f64180aa3"),
        policyId: B256::repeat_byte(0x33),
        expiry: u64::MAX,
        metadataHash: B256::ZERO,
    }
}

fn manifest_json(m: &Manifest) -> Value {
    json!([
        m.modelId,
        m.version.to_string(),
        hex(m.bundleSha256),
        m.bundleSize.to_string(),
        hex(&m.bundleCid),
        hex(m.imageSha256),
        m.price.to_string(),
        m.paymentToken.to_string(),
        hex(m.policyId),
        m.expiry.to_string(),
        hex(m.metadataHash),
    ])
}

#[test]
fn the_page_encodes_calls_as_alloy_does() {
    let m = manifest();
    let devices = vec![3u64, 7, 1 << 40];
    let owner = address!("70997970c51812dc3a010c7d01b50e0d17dc79c8");
    let market = address!("e7f1725e7734ce288f8367e1bb143e90bb3f0512");
    let release = B256::repeat_byte(0x44);
    let signers = vec![owner, market];
    let signatures = Bytes::from(vec![0xab; 128]);
    let got = node(
        "const f = abi.FUNCTIONS, i = input; out({
          purchase: abi.encodeCall(f.purchase, [i.manifest, i.devices]),
          claimRefund: abi.encodeCall(f.claimRefund, [i.manifest, i.devices]),
          releaseId: abi.encodeCall(f.releaseId, [i.manifest]),
          publishRelease: abi.encodeCall(f.publishRelease, [i.manifest, [i.signers, 2, i.signatures]]),
          model: abi.encodeCall(f.model, [7]),
          checkDevices: abi.encodeCall(f.checkDevices, [i.owner, 7, true, i.devices]),
          registerManufacturer: abi.encodeCall(f.registerManufacturer, ['Beta — Geräte', i.owner, i.market, i.signers, 2, 'bafkreiabc']),
          defineModel: abi.encodeCall(f.defineModel, [7, 'beta-one', 3n]),
          claimDevice: abi.encodeCall(f.claimDevice, [3n, 9n, i.owner, 7, i.market, [i.release, i.release], i.signatures]),
          revokeRelease: abi.encodeCall(f.revokeRelease, [i.release, 'clé fuitée', [i.signers, 1, i.signatures]]),
          raiseFloor: abi.encodeCall(f.raiseFloor, [7, 9n, [i.signers, 2, i.signatures]]),
          updateManufacturer: abi.encodeCall(f.updateManufacturer, [7, i.owner, i.market, [i.signers, 2, i.signatures]]),
          rotateSigners: abi.encodeCall(f.rotateSigners, [7, i.signers, 2, [i.signers, 1, i.signatures]]),
          transferDevice: abi.encodeCall(f.transferDevice, [i.devices[2], i.owner]),
          signersHash: abi.encodeCall(f.signersHash, [i.signers, 2]),
          isEntitled: abi.encodeCall(f.isEntitled, [i.release, 9n]),
          device: abi.encodeCall(f.device, ['0x10']),
          allowance: abi.encodeCall(f.allowance, [i.owner, i.market]),
          approve: abi.encodeCall(f.approve, [i.market, (1n << 256n) - 1n]),
          symbol: abi.encodeCall(f.symbol, []),
          purchaseWithPermit: abi.encodeCall(f.purchaseWithPermit, [i.manifest, i.devices, [(1n << 256n) - 1n, 1700000000n, 28, i.release, i.release]]),
          emergencyRevoke: abi.encodeCall(f.emergencyRevoke, [i.release, 'clé fuitée: a reason longer than one word of thirty-two bytes']),
        });",
        &json!({
            "manifest": manifest_json(&m),
            "devices": devices.iter().map(u64::to_string).collect::<Vec<_>>(),
            "owner": owner.to_string(),
            "market": market.to_string(),
            "release": hex(release),
            "signers": signers.iter().map(Address::to_string).collect::<Vec<_>>(),
            "signatures": hex(signatures.clone()),
        }),
    );
    let want = json!({
        "purchase": hex(UpdateMarket::purchaseCall { manifest: m.clone(), deviceIndexes: devices.clone() }.abi_encode()),
        "claimRefund": hex(UpdateMarket::claimRefundCall { manifest: m.clone(), deviceIndexes: devices.clone() }.abi_encode()),
        "releaseId": hex(UpdateRegistry::releaseIdCall { manifest: Reg::Manifest {
            modelId: m.modelId, version: m.version, bundleSha256: m.bundleSha256, bundleSize: m.bundleSize,
            bundleCid: m.bundleCid.clone(), imageSha256: m.imageSha256, price: m.price,
            paymentToken: m.paymentToken, policyId: m.policyId, expiry: m.expiry, metadataHash: m.metadataHash,
        } }.abi_encode()),
        "publishRelease": hex(UpdateRegistry::publishReleaseCall {
            manifest: Reg::Manifest {
                modelId: m.modelId, version: m.version, bundleSha256: m.bundleSha256, bundleSize: m.bundleSize,
                bundleCid: m.bundleCid.clone(), imageSha256: m.imageSha256, price: m.price,
                paymentToken: m.paymentToken, policyId: m.policyId, expiry: m.expiry, metadataHash: m.metadataHash,
            },
            approval: Reg::Approval { signers: signers.clone(), threshold: 2, signatures: signatures.clone() },
        }.abi_encode()),
        "model": hex(UpdateRegistry::modelCall { modelId: 7 }.abi_encode()),
        "checkDevices": hex(UpdateRegistry::checkDevicesCall {
            owner,
            modelId: 7,
            requireActive: true,
            deviceIndexes: devices.clone(),
        }.abi_encode()),
        "registerManufacturer": hex(UpdateRegistry::registerManufacturerCall {
            name: "Beta — Geräte".into(),
            operator: owner,
            payee: market,
            signers: signers.clone(),
            threshold: 2,
            paramsCid: "bafkreiabc".into(),
        }.abi_encode()),
        "defineModel": hex(UpdateRegistry::defineModelCall { manufacturerId: 7, name: "beta-one".into(), minVersion: 3 }.abi_encode()),
        "claimDevice": hex(UpdateRegistry::claimDeviceCall {
            batchId: 3,
            deviceIndex: 9,
            device_: owner,
            modelId: 7,
            owner: market,
            proof: vec![release, release],
            deviceSignature: signatures.clone(),
        }.abi_encode()),
        "revokeRelease": hex(UpdateRegistry::revokeReleaseCall {
            releaseId_: release,
            reason: "clé fuitée".into(),
            approval: Reg::Approval { signers: signers.clone(), threshold: 1, signatures: signatures.clone() },
        }.abi_encode()),
        "updateManufacturer": hex(UpdateRegistry::updateManufacturerCall {
            manufacturerId: 7,
            operator: owner,
            payee: market,
            approval: Reg::Approval { signers: signers.clone(), threshold: 2, signatures: signatures.clone() },
        }.abi_encode()),
        "raiseFloor": hex(UpdateRegistry::raiseFloorCall {
            modelId: 7,
            minVersion: 9,
            approval: Reg::Approval { signers: signers.clone(), threshold: 2, signatures: signatures.clone() },
        }.abi_encode()),
        "rotateSigners": hex(UpdateRegistry::rotateSignersCall {
            manufacturerId: 7,
            newSigners: signers.clone(),
            newThreshold: 2,
            approval: Reg::Approval { signers: signers.clone(), threshold: 1, signatures: signatures.clone() },
        }.abi_encode()),
        "transferDevice": hex(UpdateRegistry::transferDeviceCall { deviceIndex: devices[2], to: owner }.abi_encode()),
        "signersHash": hex(UpdateRegistry::signersHashCall { signers: signers.clone(), threshold: 2 }.abi_encode()),
        "isEntitled": hex(UpdateMarket::isEntitledCall { releaseId: release, deviceIndex: 9 }.abi_encode()),
        "device": hex(UpdateRegistry::deviceCall { deviceIndex: 16 }.abi_encode()),
        "allowance": hex(IERC20::allowanceCall { owner, spender: market }.abi_encode()),
        "approve": hex(IERC20::approveCall { spender: market, amount: U256::MAX }.abi_encode()),
        "symbol": hex(IERC20::symbolCall {}.abi_encode()),
        "purchaseWithPermit": hex(UpdateMarket::purchaseWithPermitCall {
            manifest: m.clone(),
            deviceIndexes: devices.clone(),
            permit: MarketPermit { value: U256::MAX, deadline: U256::from(1_700_000_000u64), v: 28, r: release, s: release },
        }.abi_encode()),
        "emergencyRevoke": hex(UpdateRegistry::emergencyRevokeCall {
            releaseId_: release,
            reason: "clé fuitée: a reason longer than one word of thirty-two bytes".into(),
        }.abi_encode()),
    });
    assert_eq!(got, want);
}

#[test]
fn the_page_decodes_returns_events_and_reverts_as_alloy_encodes_them() {
    let owner = address!("70997970c51812dc3a010c7d01b50e0d17dc79c8");
    let device = Reg::Device {
        owner,
        modelId: 7,
        status: 1,
    };
    let manufacturer = Reg::Manufacturer {
        signersHash: B256::repeat_byte(0x55),
        operator: owner,
        nonce: 3,
        payee: Address::ZERO,
    };
    let release = Reg::Release {
        version: 9,
        modelId: 7,
        publishedAt: alloy::primitives::aliases::U40::from(1_700_000_000u64),
        revokedAt: alloy::primitives::aliases::U40::from(1_700_000_999u64),
        rolloutBps: 10_000,
    };
    let purchased = UpdateMarket::Purchased {
        releaseId: B256::repeat_byte(0x44),
        buyer: owner,
        deviceIndexes: vec![3, 7, 8],
        amount: U256::from(30_000_000_000_000_000u128),
        token: Address::ZERO,
    };
    let input = json!({
        "device": hex(UpdateRegistry::deviceCall::abi_encode_returns(&device)),
        "manufacturer": hex(UpdateRegistry::manufacturerCall::abi_encode_returns(&manufacturer)),
        "release": hex(UpdateRegistry::releaseCall::abi_encode_returns(&release)),
        "isEntitled": hex(UpdateMarket::isEntitledCall::abi_encode_returns(&true)),
        "allowance": hex(IERC20::allowanceCall::abi_encode_returns(&U256::MAX)),
        "symbol": hex(IERC20::symbolCall::abi_encode_returns(&"USDé".to_owned())),
        "purchasedData": hex(purchased.encode_data()),
        "entitled": hex(UpdateMarket::UpdateMarketAlreadyEntitled { releaseId: B256::repeat_byte(0x44), deviceIndex: 7 }.abi_encode()),
        "wrongPayment": hex(UpdateMarket::UpdateMarketWrongPayment { expected: U256::from(3), given: U256::from(2) }.abi_encode()),
        "revert": hex(alloy::sol_types::Revert::from("no way").abi_encode()),
    });
    let got = node(
        "const f = abi.FUNCTIONS, i = input; out({
          device: abi.decodeResult(f.device, i.device),
          manufacturer: abi.decodeResult(f.manufacturer, i.manufacturer),
          release: abi.decodeResult(f.release, i.release),
          isEntitled: abi.decodeResult(f.isEntitled, i.isEntitled),
          allowance: abi.decodeResult(f.allowance, i.allowance),
          symbol: abi.decodeResult(f.symbol, i.symbol),
          purchased: abi.decode(abi.EVENTS.Purchased.data, i.purchasedData),
          entitled: abi.decodeRevert(i.entitled),
          wrongPayment: abi.decodeRevert(i.wrongPayment).text,
          revert: abi.decodeRevert(i.revert).text,
          unknown: abi.decodeRevert('0xdeadbeef'),
        });",
        &input,
    );
    let lower = |a: Address| format!("{a:#x}");
    assert_eq!(got["device"], json!([[lower(owner), "7", "1"]]));
    assert_eq!(
        got["manufacturer"],
        json!([[
            hex(B256::repeat_byte(0x55)),
            lower(owner),
            "3",
            lower(Address::ZERO)
        ]])
    );
    assert_eq!(
        got["release"],
        json!([["9", "7", "1700000000", "1700000999", "10000"]])
    );
    assert_eq!(got["isEntitled"], json!([true]));
    assert_eq!(got["allowance"], json!([U256::MAX.to_string()]));
    assert_eq!(got["symbol"], json!(["USDé"]));
    assert_eq!(
        got["purchased"],
        json!([["3", "7", "8"], "30000000000000000", lower(Address::ZERO)])
    );
    assert_eq!(got["entitled"]["name"], "UpdateMarketAlreadyEntitled");
    assert_eq!(
        got["entitled"]["args"],
        json!([hex(B256::repeat_byte(0x44)), "7"])
    );
    assert_eq!(got["wrongPayment"], "UpdateMarketWrongPayment(3, 2)");
    assert_eq!(got["revert"], "no way");
    assert_eq!(got["unknown"], Value::Null);
}

#[test]
fn malformed_input_and_data_are_refused_by_name() {
    let good_device = hex(UpdateRegistry::deviceCall::abi_encode_returns(
        &Reg::Device {
            owner: Address::repeat_byte(1),
            modelId: 1,
            status: 1,
        },
    ));
    let bytes_return = hex(("ok".to_owned(),).abi_encode_params());
    let got = node(
        "const f = abi.FUNCTIONS, i = input;
         const refused = (what, run) => { try { run(); return `${what}: accepted`; } catch (e) { return `${e.name}: ${e.message}`; } };
         out([
           refused('uint64 overflow', () => abi.encodeCall(f.device, [1n << 64n])),
           refused('negative', () => abi.encodeCall(f.device, [-1])),
           refused('short address', () => abi.encodeCall(f.allowance, ['0x1234', '0x1234'])),
           refused('bytes32 of 31', () => abi.encodeCall(f.isEntitled, ['0x' + '00'.repeat(31), 1])),
           refused('odd hex', () => abi.encodeCall(f.isEntitled, ['0x' + '0'.repeat(63), 1])),
           refused('argument count', () => abi.encodeCall(f.device, [])),
           refused('fractional', () => abi.encodeCall(f.device, [1.5])),
           refused('truncated', () => abi.decodeResult(f.device, i.device.slice(0, -2))),
           refused('dirty address', () => abi.decodeResult(f.device, '0x01' + i.device.slice(4))),
           refused('uint8 out of range', () => abi.decodeResult(f.device, i.device.slice(0, 2 + 128) + '00'.repeat(30) + '0100')),
           refused('offset past end', () => abi.decodeResult(f.symbol, '0x' + 'ff'.repeat(32) + i.str.slice(66))),
           refused('length past end', () => abi.decodeResult(f.symbol, i.str.slice(0, 66) + 'ff'.repeat(32) + i.str.slice(130))),
           refused('fixed array', () => abi.parseType('uint8[2]')),
           refused('signed', () => abi.parseType('int256')),
         ]);",
        &json!({ "device": good_device, "str": bytes_return }),
    );
    for line in got.as_array().unwrap() {
        let line = line.as_str().unwrap();
        assert!(line.starts_with("AbiError: "), "{line}");
    }
    let all = got.to_string();
    for word in [
        "does not fit uint64",
        "20-byte 0x address",
        "expected 32 bytes",
        "takes 1 arguments",
        "data ends at",
        "dirty address padding",
        "does not fit uint8",
        "past the end",
        "outside this encoder's scope",
    ] {
        assert!(all.contains(word), "no refusal mentions {word:?}: {all}");
    }
}

// ---------------------------------------------------------------- publish.js

/// One seeded mutation of `text` (`None` when it is not UTF-8 or unchanged): of the first
/// `kinds` of a byte replaced by one of `alphabet`, one inserted, one deleted, a line dropped, a
/// line doubled.
fn mutate(rng: &mut Rng, text: &str, alphabet: &[u8], kinds: u64) -> Option<String> {
    let mut b = text.as_bytes().to_vec();
    let at = rng.below(b.len() as u64) as usize;
    let pick = |rng: &mut Rng| alphabet[rng.below(alphabet.len() as u64) as usize];
    match rng.below(kinds) {
        0 => b[at] = pick(rng),
        1 => b.insert(at, pick(rng)),
        2 => {
            b.remove(at);
        }
        kind => {
            let lines: Vec<&str> = text.lines().collect();
            let chosen = rng.below(lines.len() as u64) as usize;
            let mut out = Vec::new();
            for (k, l) in lines.iter().enumerate() {
                // 3: the chosen line dropped; 4: doubled.
                if k != chosen || kind == 4 {
                    out.push(*l);
                }
                if k == chosen && kind == 4 {
                    out.push(*l);
                }
            }
            b = format!("{}\n", out.join("\n")).into_bytes();
        }
    }
    String::from_utf8(b).ok().filter(|t| t != text)
}

/// Manifest files as `otaledger release create` writes them: field values from small to the
/// largest a browser reads exactly (integers below 2^53; the price up to uint128's maximum).
fn manifest_files(rng: &mut Rng, n: usize) -> Vec<ManifestFile> {
    (0..n)
        .map(|i| {
            let model = 1 + rng.below(u64::from(u32::MAX)) as u32;
            let version = if i % 3 == 0 {
                (1 << 53) - 1
            } else {
                1 + rng.below(1 << 40)
            };
            let policy = default_policy(model, version);
            let cid_len = [0, 1, 36, 59, 64][i % 5];
            ManifestFile {
                chain_id: [1, 31_337, (1 << 53) - 1][i % 3],
                registry: Address::from(rng.bytes::<20>()),
                policy: policy.to_string(),
                manifest: Reg::Manifest {
                    modelId: model,
                    version,
                    bundleSha256: B256::from(rng.bytes::<32>()),
                    bundleSize: rng.below(1 << 53),
                    bundleCid: Bytes::from(
                        (0..cid_len).map(|_| rng.next() as u8).collect::<Vec<_>>(),
                    ),
                    imageSha256: B256::from(rng.bytes::<32>()),
                    price: if i % 4 == 0 {
                        u128::MAX
                    } else {
                        u128::from(rng.next()) * 1_000
                    },
                    paymentToken: if i % 2 == 0 {
                        Address::ZERO
                    } else {
                        Address::from(rng.bytes::<20>())
                    },
                    policyId: policy_id(&policy),
                    expiry: [0, rng.below(1 << 53)][i % 2],
                    metadataHash: B256::from(rng.bytes::<32>()),
                },
            }
        })
        .collect()
}

/// The manifest's fields as the page's tuple prints them (integers as decimal text).
fn fields(m: &Reg::Manifest) -> Value {
    json!([
        m.modelId.to_string(),
        m.version.to_string(),
        hex(m.bundleSha256),
        m.bundleSize.to_string(),
        hex(&m.bundleCid),
        hex(m.imageSha256),
        m.price.to_string(),
        format!("{:#x}", m.paymentToken),
        hex(m.policyId),
        m.expiry.to_string(),
        hex(m.metadataHash),
    ])
}

/// What the page reads from manifest.json is what the CLI wrote, and the EIP-712 typed data it
/// hands a wallet to sign hashes to the manifest file's digest (the one `release sign` signs
/// and the registry recovers from): a signature from the page's typed data verifies as the
/// file's, checked with a real signer of the typed data (anvil's `eth_signTypedData_v4`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_reads_manifest_files_as_written_and_has_wallets_sign_their_digest() {
    let files = manifest_files(&mut Rng(0x5eed_0001), 24);
    let texts: Vec<String> = files.iter().map(ManifestFile::to_json).collect();
    let got = node(
        "out(input.map((t) => { const f = publish.parseManifestFile(t); return { tuple: f.tuple, typed: JSON.stringify(publish.typedData(f)), releaseId: f.releaseId }; }));",
        &json!(texts),
    );
    let anvil = otaledger_core::toolchain::spawn_anvil().unwrap();
    let signer: alloy::signers::local::PrivateKeySigner = anvil.keys()[0].clone().into();
    let http = reqwest::Client::new();
    for (i, (file, out)) in files.iter().zip(got.as_array().unwrap()).enumerate() {
        assert_eq!(out["tuple"], fields(&file.manifest), "file {i}");
        assert_eq!(out["releaseId"], hex(file.release_id()), "file {i}");
        let answer: Value = http
            .post(anvil.endpoint())
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_signTypedData_v4",
                "params": [signer.address(), out["typed"].as_str().unwrap()]}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sig: alloy::primitives::Signature = answer["result"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("file {i}: {e}: {answer}"));
        assert_eq!(
            sig.recover_address_from_prehash(&file.digest()).unwrap(),
            signer.address(),
            "file {i}: the wallet signed another digest than the manifest's"
        );
    }
}

/// manifest.json is untrusted text the page parses by hand: 6,000 seeded mutations of
/// canonical files (a byte changed, inserted or deleted, a line dropped or doubled) never crash
/// the parser, and whatever it accepts the CLI's parser reads the same (same manifest fields;
/// the CLI may still refuse it for a derived field the page cannot recompute, policyId,
/// releaseId or digest, which the page leaves to the registry's hash and the signer's CLI).
#[test]
fn manifest_file_mutations_are_refused_or_read_as_the_cli_reads_them() {
    let mut rng = Rng(0x5eed_0002);
    let files = manifest_files(&mut rng, 8);
    const ALPHABET: &[u8] = b"0123456789abcdefABCDEFx\" :,{}[]\n-+.eE\\\t";
    let mut mutants = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = file.to_json();
        for _ in 0..750 {
            if let Some(t) = mutate(&mut rng, &text, ALPHABET, 5) {
                mutants.push((i, t));
            }
        }
    }
    let results = node(
        "out(input.map((t) => { try { const f = publish.parseManifestFile(t); return { ok: f.tuple }; } catch (e) { if (!(e instanceof Error)) throw e; return { err: e.message }; } }));",
        &json!(mutants.iter().map(|(_, t)| t).collect::<Vec<_>>()),
    );
    let mut accepted = 0;
    for ((i, text), r) in mutants.iter().zip(results.as_array().unwrap()) {
        let Some(tuple) = r.get("ok") else {
            assert!(r["err"].is_string(), "{r}");
            continue;
        };
        accepted += 1;
        match ManifestFile::from_json(text, std::path::Path::new("manifest.json")) {
            Ok(cli) => assert_eq!(tuple, &fields(&cli.manifest), "mutant of file {i}:\n{text}"),
            Err(e) => {
                assert!(
                    matches!(e, otaledger_core::Error::DerivedFieldMismatch { .. })
                        || e.to_string().contains("policy"),
                    "the page accepted what the CLI refuses ({e}):\n{text}"
                );
                // Read the fields the plain way: they are what the page read.
                let v: Value = serde_json::from_str(text).unwrap();
                let m = &v["manifest"];
                let as_text = |k: &str| match &m[k] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    other => panic!("{k}: {other}"),
                };
                let plain: Vec<String> = [
                    "modelId",
                    "version",
                    "bundleSha256",
                    "bundleSize",
                    "bundleCid",
                    "imageSha256",
                    "price",
                    "paymentToken",
                    "policyId",
                    "expiry",
                    "metadataHash",
                ]
                .iter()
                .map(|k| as_text(k))
                .collect();
                assert_eq!(tuple, &json!(plain), "mutant of file {i}:\n{text}");
            }
        }
    }
    // Some mutants must be accepted (changed hex digits of a field), or the check above
    // would be vacuous; most are refused.
    assert!(
        accepted > 50 && accepted < mutants.len() / 2,
        "{accepted} of {}",
        mutants.len()
    );
}

/// Signatures as wallets return them (65 bytes, v 27/28 or 0/1) become the registry's
/// EIP-2098 form exactly as alloy writes it; the high-s twin and malformed ones are refused.
#[test]
fn the_page_compacts_signatures_as_alloy_does_and_refuses_malleable_ones() {
    use alloy::signers::SignerSync as _;
    let mut rng = Rng(0x5eed_0003);
    let mut cases = Vec::new();
    for _ in 0..64 {
        let key =
            alloy::signers::local::PrivateKeySigner::from_bytes(&B256::from(rng.bytes::<32>()))
                .unwrap();
        let sig = key.sign_hash_sync(&B256::from(rng.bytes::<32>())).unwrap();
        let mut raw = sig.as_bytes();
        let legacy = hex(raw);
        raw[64] -= 27;
        cases.push((legacy, hex(raw), hex(sig.as_erc2098())));
    }
    let got = node(
        "out(input.map(([a, b]) => [publish.compact(a), publish.compact(b)]));",
        &json!(cases.iter().map(|(a, b, _)| [a, b]).collect::<Vec<_>>()),
    );
    for ((_, _, want), got) in cases.iter().zip(got.as_array().unwrap()) {
        assert_eq!(got, &json!([want, want]));
    }
    // The high-s twin (s' = n - s, parity flipped) of a valid signature, and malformed ones.
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let (legacy, _, _) = &cases[0];
    let bytes = alloy::hex::decode(legacy).unwrap();
    let s = U256::from_be_slice(&bytes[32..64]);
    let mut twin = bytes.clone();
    twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    twin[64] = if bytes[64] == 27 { 28 } else { 27 };
    let bad = [
        hex(&twin),
        legacy[..legacy.len() - 2].to_owned(),
        format!("{legacy}00"),
        format!("{}1d", &legacy[..legacy.len() - 2]),
        legacy.replace("0x", ""),
        "0x".to_owned(),
    ];
    let got = node(
        "out(input.map((s) => { try { publish.compact(s); return 'accepted'; } catch (e) { return e.message; } }));",
        &json!(bad),
    );
    for (b, r) in bad.iter().zip(got.as_array().unwrap()) {
        assert_ne!(r, "accepted", "{b}");
    }
    assert!(got[0].as_str().unwrap().contains("malleable"), "{got}");
}

/// The threshold actions' inputs: a revocation reason must read as what it is (no controls,
/// bidirectional or invisible formatting characters, as the CLI's check), a new signer set is
/// sorted, unique and non-zero with a threshold in range; each refusal names the problem.
#[test]
fn the_page_checks_reasons_and_signer_sets_before_anyone_signs() {
    let a = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
    let b = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc";
    let got = node(
        "const t = (f) => { try { return { ok: f() }; } catch (e) { return { err: e.message }; } };
         out({
           reasons: input.reasons.map((r) => t(() => publish.checkReason(r))),
           sets: input.sets.map(([s, k]) => t(() => publish.parseSignerSet(s, k))),
         });",
        &json!({
            "reasons": ["clé fuitée: signing key leaked", "", "  ", "a\nb", "a\u{202E}b", "a\u{200B}b",
                "a\u{2066}b", "a\u{7f}", "a\u{85}", "x".repeat(1025)],
            "sets": [
                [format!("{a}\n{b}"), 2], [format!("{a}, {b}"), "1"], [format!("{a} {a}"), 1],
                [format!("{a} 0x{}", "0".repeat(40)), 1], [a.to_owned(), 2], [a.to_owned(), 0],
                [format!("{a} 0x12"), 1], [String::new(), 1], [a.to_uppercase().replace("0X", "0x"), 1],
            ],
        }),
    );
    let reasons = got["reasons"].as_array().unwrap();
    assert_eq!(reasons[0]["ok"], "clé fuitée: signing key leaked");
    for (i, r) in reasons.iter().enumerate().skip(1) {
        assert!(r["err"].is_string(), "reason {i} accepted: {r}");
    }
    assert!(
        reasons[4]["err"].as_str().unwrap().contains("U+202E"),
        "{}",
        reasons[4]
    );
    let sets = got["sets"].as_array().unwrap();
    // Sorted ascending by address value whatever the input order.
    assert_eq!(sets[0]["ok"], json!({"signers": [b, a], "threshold": 2}));
    assert_eq!(sets[1]["ok"], json!({"signers": [b, a], "threshold": 1}));
    assert!(
        sets[2]["err"].as_str().unwrap().contains("twice"),
        "{}",
        sets[2]
    );
    assert!(
        sets[3]["err"].as_str().unwrap().contains("zero"),
        "{}",
        sets[3]
    );
    assert!(
        sets[4]["err"].as_str().unwrap().contains("threshold"),
        "{}",
        sets[4]
    );
    assert!(
        sets[5]["err"].as_str().unwrap().contains("threshold"),
        "{}",
        sets[5]
    );
    assert!(
        sets[6]["err"].as_str().unwrap().contains("not an address"),
        "{}",
        sets[6]
    );
    assert!(sets[7]["err"].is_string(), "{}", sets[7]);
    assert_eq!(sets[8]["ok"], json!({"signers": [a], "threshold": 1}));
}

/// `claim.json` as `otaledger device claim-request` writes it (the CLI's field order, two-space
/// indentation, a final newline), for `proof_len` proof hashes.
fn claim_text(rng: &mut Rng, proof_len: usize) -> (String, Value) {
    let fields = json!({
        "chainId": 31_337,
        "registry": hex(rng.bytes::<20>()),
        "batchId": rng.below(1 << 53),
        "deviceIndex": rng.below(1 << 53),
        "device": hex(rng.bytes::<20>()),
        "modelId": rng.below(1 << 32),
        "owner": hex(rng.bytes::<20>()),
        "proof": (0..proof_len).map(|_| hex(rng.bytes::<32>())).collect::<Vec<_>>(),
        "signature": hex(rng.bytes::<64>()),
    });
    let proof = if proof_len == 0 {
        "[]".to_owned()
    } else {
        let items: Vec<String> = fields["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("    {p}"))
            .collect();
        format!("[\n{}\n  ]", items.join(",\n"))
    };
    let text = format!(
        "{{\n  \"format\": \"otaledger-claim/1\",\n  \"chainId\": {},\n  \"registry\": {},\n  \"batchId\": {},\n  \"deviceIndex\": {},\n  \"device\": {},\n  \"modelId\": {},\n  \"owner\": {},\n  \"proof\": {proof},\n  \"signature\": {}\n}}\n",
        fields["chainId"],
        fields["registry"],
        fields["batchId"],
        fields["deviceIndex"],
        fields["device"],
        fields["modelId"],
        fields["owner"],
        fields["signature"],
    );
    (text, fields)
}

/// claim.json is untrusted text the page parses by hand: canonical files are read field for
/// field; 4,000 seeded mutations never crash the parser, and whatever it accepts holds the same
/// fields serde reads from the same text (one reading, no second spelling).
#[test]
fn claim_files_are_read_exactly_and_mutations_refused_or_read_the_same() {
    let mut rng = Rng(0x5eed_0004);
    let originals: Vec<(String, Value)> = (0..8)
        .map(|i| claim_text(&mut rng, [0, 1, 5, 32][i % 4]))
        .collect();
    const ALPHABET: &[u8] = b"0123456789abcdefABCDEFx\" :,{}[]\n-+.eE\\";
    let mut texts: Vec<String> = originals.iter().map(|(t, _)| t.clone()).collect();
    for (t, _) in &originals {
        for _ in 0..500 {
            if let Some(m) = mutate(&mut rng, t, ALPHABET, 3) {
                texts.push(m);
            }
        }
    }
    let results = node(
        "out(input.map((t) => { try { const c = claim.parseClaimFile(t); return { ok: c }; } catch (e) { if (!(e instanceof Error)) throw e; return { err: e.message }; } }));",
        &json!(texts),
    );
    let results = results.as_array().unwrap();
    let as_page = |v: &Value| {
        let mut v = v.clone();
        for k in ["chainId", "batchId", "deviceIndex", "modelId"] {
            v[k] = json!(v[k].to_string());
        }
        v.as_object_mut().unwrap().remove("format");
        v
    };
    for (i, (_, fields)) in originals.iter().enumerate() {
        assert_eq!(results[i]["ok"], as_page(fields), "original {i}");
    }
    // The CLI's key order is part of the canonical form (as for manifest.json): the same lines
    // with two keys swapped are refused.
    let lines: Vec<&str> = originals[0].0.lines().collect();
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let swapped = format!("{}\n", swapped.join("\n"));
    let r = node(
        "try { claim.parseClaimFile(input); out('accepted'); } catch (e) { out(e.message); }",
        &json!(swapped),
    );
    assert!(
        r.as_str().unwrap().contains("canonical form"),
        "{r}: {swapped}"
    );
    let mut accepted = 0;
    for (text, r) in texts.iter().zip(results).skip(originals.len()) {
        let Some(read) = r.get("ok") else {
            assert!(r["err"].is_string(), "{r}");
            continue;
        };
        accepted += 1;
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            read,
            &as_page(&plain),
            "a mutant read otherwise than serde reads it:\n{text}"
        );
    }
    assert!(
        accepted > 20 && accepted < texts.len() / 2,
        "{accepted} of {}",
        texts.len()
    );
}

/// The page's keccak-256 (`dashboard/keccak.js`) equals alloy's on every length from 0 to 700
/// bytes (the rate is 136: one, two and more blocks, every padding position).
#[test]
fn the_page_hashes_as_alloy_does() {
    let mut rng = Rng(0x5eed_0005);
    let inputs: Vec<String> = (0..=700)
        .map(|n| hex((0..n).map(|_| rng.next() as u8).collect::<Vec<_>>()))
        .collect();
    let got = node(
        "out(input.map((h) => keccak.keccakHex(h)));",
        &json!(inputs),
    );
    for (i, (input, h)) in inputs.iter().zip(got.as_array().unwrap()).enumerate() {
        let want = alloy::primitives::keccak256(alloy::hex::decode(input).unwrap());
        assert_eq!(h, &json!(hex(want)), "{i} bytes");
    }
}

/// The digest the page recovers each gathered signature over is the one the registry checks:
/// for every action, the page's EIP-712 digest equals alloy's for the same struct under the
/// registry's domain (publish: the manifest file's digest).
#[test]
fn the_page_computes_each_actions_digest_as_the_registry_does() {
    use alloy::sol_types::SolStruct as _;
    use otaledger_core::signing::{
        RaiseFloor, RevokeRelease, RotateSigners, UpdateManufacturer, registry_domain,
    };
    let mut rng = Rng(0x5eed_0006);
    let files = manifest_files(&mut rng, 6);
    let mut cases = Vec::new();
    let mut want = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let domain = registry_domain(f.chain_id, f.registry);
        let (chain, registry) = (f.chain_id, format!("{:#x}", f.registry));
        cases.push(json!(["publish", chain, registry, f.manifest.eip712_hash_struct().to_string(), {
            "modelId": f.manifest.modelId, "version": f.manifest.version.to_string(),
            "bundleSha256": hex(f.manifest.bundleSha256), "bundleSize": f.manifest.bundleSize.to_string(),
            "bundleCid": hex(&f.manifest.bundleCid), "imageSha256": hex(f.manifest.imageSha256),
            "price": f.manifest.price.to_string(), "paymentToken": format!("{:#x}", f.manifest.paymentToken),
            "policyId": hex(f.manifest.policyId), "expiry": f.manifest.expiry.to_string(),
            "metadataHash": hex(f.manifest.metadataHash),
        }]));
        want.push(f.digest());
        let reason = ["", "key leak", "clé fuitée — ünïcode", &"x".repeat(300)][i % 4].to_owned();
        let revoke = RevokeRelease {
            releaseId: B256::from(rng.bytes::<32>()),
            reason: reason.clone(),
        };
        cases.push(json!(["revoke", chain, registry, null, {"releaseId": hex(revoke.releaseId), "reason": reason}]));
        want.push(revoke.eip712_signing_hash(&domain));
        let floor = RaiseFloor {
            modelId: rng.next() as u32,
            minVersion: rng.next(),
        };
        cases.push(json!(["floor", chain, registry, null, {"modelId": floor.modelId.to_string(), "minVersion": floor.minVersion.to_string()}]));
        want.push(floor.eip712_signing_hash(&domain));
        let signers: Vec<Address> = (0..(i % 4))
            .map(|_| Address::from(rng.bytes::<20>()))
            .collect();
        let rotate = RotateSigners {
            manufacturerId: rng.next() as u32,
            nonce: rng.next(),
            signers: signers.clone(),
            threshold: (i % 4) as u8,
        };
        cases.push(json!(["rotate", chain, registry, null, {
            "manufacturerId": rotate.manufacturerId.to_string(), "nonce": rotate.nonce.to_string(),
            "signers": signers.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(), "threshold": rotate.threshold.to_string(),
        }]));
        want.push(rotate.eip712_signing_hash(&domain));
        let update = UpdateManufacturer {
            manufacturerId: rng.next() as u32,
            nonce: rng.next(),
            operator: Address::from(rng.bytes::<20>()),
            payee: Address::from(rng.bytes::<20>()),
        };
        cases.push(json!(["operator", chain, registry, null, {
            "manufacturerId": update.manufacturerId.to_string(), "nonce": update.nonce.to_string(),
            "operator": format!("{:#x}", update.operator), "payee": format!("{:#x}", update.payee),
        }]));
        want.push(update.eip712_signing_hash(&domain));
    }
    let got = node(
        "out(input.map(([kind, chain, registry, id, m]) => ({ digest: publish.actionDigest(kind, chain, registry, m), struct: publish.structHash(kind, m), id })));",
        &json!(cases),
    );
    for ((case, w), g) in cases.iter().zip(&want).zip(got.as_array().unwrap()) {
        assert_eq!(g["digest"], json!(hex(w)), "{case}");
        if !g["id"].is_null() {
            assert_eq!(g["struct"], g["id"], "the release id: {case}");
        }
    }
}

alloy::sol! {
    /// EIP-2612's permit, as permit tokens hash it.
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

fn permit_domain(name: &str, version: &str, chain: U256, token: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(name.to_owned().into()),
        Some(version.to_owned().into()),
        Some(chain),
        Some(token),
        None,
    )
}

/// The permit the page has a wallet sign (`dashboard/permit.js`) is the one tokens check: its
/// domain separator and digest equal alloy's EIP-712 hashes on random domains (unicode and
/// long names, chain ids up to 2^256 − 1) and permits, and the typed data it hands the wallet
/// carries exactly those fields. A token's `eip712Domain()` return, as alloy encodes it,
/// decodes into that domain.
#[test]
fn the_page_computes_permit_digests_as_tokens_do() {
    use alloy::sol_types::SolStruct as _;
    let mut rng = Rng(0x5eed_0007);
    let long = "permit ".repeat(40);
    let names = ["Demo USD", "Ünïcode Tökén — €", "", long.as_str()];
    let mut cases = Vec::new();
    let mut want = Vec::new();
    for i in 0..24 {
        let chain = match i % 3 {
            0 => U256::from(31_337u64),
            1 => U256::from(rng.next()),
            _ => U256::from_be_bytes(rng.bytes::<32>()),
        };
        let token = Address::from(rng.bytes::<20>());
        let (name, version) = (names[i % 4], ["1", "2", "v1.0 β"][i % 3]);
        let domain = permit_domain(name, version, chain, token);
        let permit = Permit {
            owner: Address::from(rng.bytes::<20>()),
            spender: Address::from(rng.bytes::<20>()),
            value: if i % 5 == 0 {
                U256::MAX
            } else {
                U256::from(rng.next())
            },
            nonce: U256::from(rng.below(1_000)),
            deadline: U256::from(rng.next() >> 20),
        };
        cases.push(json!([
            { "name": name, "version": version, "chainId": chain.to_string(), "verifyingContract": format!("{token:#x}") },
            { "owner": format!("{:#x}", permit.owner), "spender": format!("{:#x}", permit.spender),
              "value": permit.value.to_string(), "nonce": permit.nonce.to_string(), "deadline": permit.deadline.to_string() },
        ]));
        want.push((
            domain.separator(),
            permit.eip712_signing_hash(&domain),
            permit,
        ));
    }
    let got = node(
        "out(input.map(([d, p]) => { const s = permit.domainSeparator(d); return { separator: s, digest: permit.permitDigest(s, p), typed: permit.permitTypedData(d, p) }; }));",
        &json!(cases),
    );
    for ((case, (separator, digest, p)), g) in cases.iter().zip(&want).zip(got.as_array().unwrap())
    {
        assert_eq!(g["separator"], json!(hex(separator)), "{case}");
        assert_eq!(g["digest"], json!(hex(digest)), "{case}");
        let typed = &g["typed"];
        assert_eq!(typed["primaryType"], "Permit");
        assert_eq!(typed["domain"]["name"], case[0]["name"]);
        assert_eq!(typed["domain"]["chainId"], case[0]["chainId"]);
        assert_eq!(typed["message"]["value"], p.value.to_string());
        assert_eq!(typed["message"]["owner"], format!("{:#x}", p.owner));
    }

    // eip712Domain() as a token answers it.
    let token = address!("5fbdb2315678afecb367f032d93f642f64180aa3");
    let data = DemoToken::eip712DomainCall::abi_encode_returns(&DemoToken::eip712DomainReturn {
        fields: alloy::primitives::FixedBytes([0x0f]),
        name: "Demo USD".into(),
        version: "1".into(),
        chainId: U256::from(31_337u64),
        verifyingContract: token,
        salt: B256::ZERO,
        extensions: vec![],
    });
    let got = node(
        "out(abi.decodeResult(abi.FUNCTIONS.eip712Domain, input));",
        &json!(hex(data)),
    );
    assert_eq!(
        got,
        json!([
            "0x0f",
            "Demo USD",
            "1",
            "31337",
            format!("{token:#x}"),
            hex(B256::ZERO),
            []
        ])
    );
}

/// Which tokens the page signs a permit for (`permit.tokenDomain`, over a wallet that answers
/// as each token would): only when the domain it reproduces hashes to the token's own
/// `DOMAIN_SEPARATOR()` on the wallet's chain at the token's address. Every other token,
/// including one whose `eip712Domain()` names another chain or contract or a salt, one whose
/// separator matches nothing the page can build, and one without permits, is `NoPermit`
/// (the purchase then approves first), never a signature over a guessed domain.
#[test]
fn the_page_signs_permits_only_for_domains_the_token_confirms() {
    let token = address!("5fbdb2315678afecb367f032d93f642f64180aa3");
    let other = address!("e7f1725e7734ce288f8367e1bb143e90bb3f0512");
    let chain = U256::from(31_337u64);
    let sep = |name: &str, version: &str, chain: U256, at: Address| {
        hex(permit_domain(name, version, chain, at).separator())
    };
    let good = sep("Demo USD", "1", chain, token);
    // Each case: what the token answers (null: the call reverts) and the domain name the page
    // should settle on (null: NoPermit).
    let domain = |fields: &str, name: &str, version: &str, chain: U256, at: Address| {
        json!([
            fields,
            name,
            version,
            chain.to_string(),
            format!("{at:#x}"),
            hex(B256::ZERO),
            []
        ])
    };
    let cases = json!([
        ["EIP-5267 domain", { "separator": good, "nonces": "0", "domain": domain("0x0f", "Demo USD", "1", chain, token), "name": null }, "Demo USD"],
        ["name() and version 1", { "separator": good, "nonces": "0", "domain": null, "name": "Demo USD" }, "Demo USD"],
        ["version 2 without EIP-5267", { "separator": sep("Demo USD", "2", chain, token), "nonces": "0", "domain": null, "name": "Demo USD" }, null],
        ["domain of another chain", { "separator": sep("Demo USD", "1", U256::from(1u64), token), "nonces": "0", "domain": domain("0x0f", "Demo USD", "1", U256::from(1u64), token), "name": "Demo USD" }, null],
        ["domain of another contract", { "separator": sep("Demo USD", "1", chain, other), "nonces": "0", "domain": domain("0x0f", "Demo USD", "1", chain, other), "name": "Demo USD" }, null],
        ["domain with a salt", { "separator": good, "nonces": "0", "domain": domain("0x1f", "Demo USD", "1", chain, token), "name": "Other" }, null],
        ["separator matching nothing", { "separator": hex(B256::repeat_byte(7)), "nonces": "0", "domain": domain("0x0f", "Demo USD", "1", chain, token), "name": "Demo USD" }, null],
        ["no DOMAIN_SEPARATOR", { "separator": null, "nonces": "0", "domain": domain("0x0f", "Demo USD", "1", chain, token), "name": "Demo USD" }, null],
        ["no nonces", { "separator": good, "nonces": null, "domain": domain("0x0f", "Demo USD", "1", chain, token), "name": "Demo USD" }, null],
    ]);
    let got = node(
        &format!(
            "const results = [];
             for (const [what, answers] of input) {{
               const wallet = {{ account: '{other:#x}', async call(to, f) {{
                 const key = {{ DOMAIN_SEPARATOR: 'separator', nonces: 'nonces', eip712Domain: 'domain', name: 'name' }}[Object.keys(abi.FUNCTIONS).find((k) => abi.FUNCTIONS[k] === f)];
                 if (to !== '{token:#x}' || answers[key] === null || answers[key] === undefined) throw new Error('execution reverted');
                 return key === 'domain' ? answers.domain : [answers[key]];
               }} }};
               try {{ const d = await permit.tokenDomain(wallet, '{token:#x}', 31337n); results.push({{ what, name: d.name }}); }}
               catch (e) {{ results.push({{ what, name: null, noPermit: e instanceof permit.NoPermit, message: e.message }}); }}
             }}
             out(results);"
        ),
        &json!(cases.as_array().unwrap().iter().map(|c| json!([c[0], c[1]])).collect::<Vec<_>>()),
    );
    for (case, g) in cases
        .as_array()
        .unwrap()
        .iter()
        .zip(got.as_array().unwrap())
    {
        assert_eq!(g["name"], case[2], "{}: {g}", case[0]);
        if case[2].is_null() {
            assert_eq!(g["noPermit"], true, "{}: {g}", case[0]);
            assert!(
                g["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{token:#x}")),
                "{g}"
            );
        }
    }
}

/// The page turns the wallet's permit signature into the market's `(v, r, s)` and refuses,
/// by name, one of the wrong length, with a v that is no parity, or with a high s.
#[test]
fn the_page_splits_permit_signatures_and_refuses_malleable_ones() {
    let r = "11".repeat(32);
    let low_s = format!("{:064x}", U256::from(5u64));
    let high_s = format!(
        "{:064x}",
        U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140",
            16
        )
        .unwrap()
    );
    let cases = json!([
        format!("0x{r}{low_s}1b"),
        format!("0x{r}{low_s}1c"),
        format!("0x{r}{low_s}00"),
        format!("0x{r}{low_s}01"),
        format!("0x{r}{low_s}1d"),
        format!("0x{r}{high_s}1b"),
        format!("0x{r}{low_s}"),
        format!("0x{r}{low_s}1b00"),
        "0xzz",
        null,
    ]);
    let got = node(
        "out(input.map((s) => { try { return permit.splitSignature(s); } catch (e) { return { error: e.message }; } }));",
        &cases,
    );
    let g = got.as_array().unwrap();
    for (i, v) in [(0, 27), (1, 28), (2, 27), (3, 28)] {
        assert_eq!(g[i]["v"], v, "{}", cases[i]);
        assert_eq!(g[i]["r"], format!("0x{r}"));
        assert_eq!(g[i]["s"], format!("0x{low_s}"));
    }
    assert!(
        g[4]["error"].as_str().unwrap().contains("v = 29"),
        "{}",
        g[4]
    );
    assert!(
        g[5]["error"].as_str().unwrap().contains("malleable"),
        "{}",
        g[5]
    );
    for e in &g[6..] {
        assert!(e["error"].as_str().unwrap().contains("not 65 bytes"), "{e}");
    }
}

/// A random policy text: attributes bare or quoted (with every escape, `\u{…}` of 1–6 digits
/// included), `and`/`or` chains in mixed case, parentheses, thresholds with k in and out of
/// range, sometimes a repeated attribute, odd spacing.
fn policy_text(rng: &mut Rng, depth: u32, used: &mut u32) -> String {
    let attr = |rng: &mut Rng, used: &mut u32| {
        *used += 1;
        let n = if rng.below(20) == 0 { 1 } else { *used };
        match rng.below(6) {
            0 => format!("\"q \\\" \\\\ \\n\\t\\r {n}\""),
            1 => format!(
                "\"\\u{{{:x}}}é{n}\"",
                [0x41, 0x263a, 0x1f600, 0x10ffff][rng.below(4) as usize]
            ),
            2 => format!("model:{n}"),
            3 => format!("Ab_:-./@+={n}"),
            4 => format!("\"release:{n}/7 and or\""),
            _ => format!("{n}"),
        }
    };
    if depth == 0 || rng.below(3) == 0 {
        return attr(rng, used);
    }
    let n = 1 + rng.below(4) as usize;
    let parts: Vec<String> = (0..n)
        .map(|_| {
            let inner = policy_text(rng, depth - 1, used);
            if rng.below(2) == 0 {
                format!("({inner})")
            } else {
                inner
            }
        })
        .collect();
    let sp = ["  ", " "][rng.below(2) as usize];
    match rng.below(3) {
        0 => parts.join(&format!(
            "{sp}{}{sp}",
            ["and", "AND", "And"][rng.below(3) as usize]
        )),
        1 => parts.join(&format!(" {} ", ["or", "OR", "oR"][rng.below(3) as usize])),
        _ => {
            let k = match rng.below(6) {
                0 => 0,
                1 => n + 1,
                _ => 1 + rng.below(n as u64) as usize,
            };
            format!(
                "{k} {} ( {} )",
                ["of", "OF"][rng.below(2) as usize],
                parts.join(" , ")
            )
        }
    }
}

/// The page's policy ids (`dashboard/policy.js`) are the cpabe crate's: on random policy texts
/// and thousands of mutations of them (characters dropped, inserted, replaced from the
/// grammar's alphabet), the page parses exactly the texts `Policy::parse` accepts and hashes
/// each to the same `policy_id` (keccak-256 of `Policy::to_bytes`); also every accepted
/// policy's own text form (`Display`), limits at their edges (32 levels, 512 leaves, 256-byte
/// attributes) and just past them.
#[test]
fn the_page_computes_policy_ids_as_the_cpabe_crate_does() {
    use otaledger_core::bundle::parse_policy;
    let mut rng = Rng(0x5eed_0008);
    let mut texts: Vec<String> = Vec::new();
    for i in 0..300 {
        let mut used = 0;
        texts.push(policy_text(&mut rng, 1 + (i % 4), &mut used));
    }
    let alphabet = b"() ,\"\\aAnNdDoOrRfF0123456789:{}u.x";
    let bases = texts.clone();
    for base in &bases {
        for _ in 0..8 {
            if let Some(m) = mutate(&mut rng, base, alphabet, 3) {
                texts.push(m);
            }
        }
    }
    let nest = |levels: usize| format!("{}a{}", "(".repeat(levels), ")".repeat(levels));
    let chain =
        |levels: usize| (0..levels).fold("leaf".to_owned(), |t, i| format!("x{i} and ({t})"));
    let leaves = |n: usize| {
        (0..n)
            .map(|i| format!("a{i}"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    texts.extend([
        nest(31),
        nest(32),
        chain(30),
        chain(31),
        chain(32),
        leaves(512),
        leaves(513),
        format!("\"{}\"", "a".repeat(256)),
        format!("\"{}\"", "a".repeat(257)),
        format!("\"{}\"", "é".repeat(128)),
        format!("\"{}é\"", "a".repeat(255)),
        "\"\\u{d800}\"".into(),
        "\"\\u{110000}\"".into(),
        "\"\\u{}\"".into(),
        "\"\\u{0000041}\"".into(),
        "18446744073709551617 of (a)".into(),
        "007 of (a, b, c, d, e, f, g)".into(),
        "2 of (a)".into(),
        "\"\"".into(),
        "a and".into(),
        "of".into(),
        "\"of\"".into(),
        "OR".into(),
        "a and Of".into(),
        "AND and b".into(),
        "\"AND\" and b".into(),
        "3 oF (a, b, c)".into(),
        "a b".into(),
        String::new(),
    ]);
    // Every accepted policy's Display form too.
    let display: Vec<String> = texts
        .iter()
        .filter_map(|t| parse_policy(t).ok())
        .map(|p| p.to_string())
        .collect();
    texts.extend(display);
    let want: Vec<Option<String>> = texts
        .iter()
        .map(|t| parse_policy(t).ok().map(|p| hex(policy_id(&p))))
        .collect();
    let got = node(
        "out(input.map((t) => { try { return policy.policyId(t); } catch (e) { if (!(e instanceof policy.PolicyError)) throw e; return null; } }));",
        &json!(texts),
    );
    let accepted = want.iter().filter(|w| w.is_some()).count();
    assert!(
        accepted > 400 && accepted < texts.len() - 400,
        "{accepted} of {}",
        texts.len()
    );
    for ((text, w), g) in texts.iter().zip(&want).zip(got.as_array().unwrap()) {
        assert_eq!(g, &json!(w), "{text:?}");
    }
}

/// A manifest file whose policy text does not hash to the `policyId` it signs is refused by
/// name before anyone is asked to sign (the page shows signers the policy text).
#[test]
fn a_manifest_file_whose_policy_text_is_not_the_signed_one_is_refused() {
    let mut rng = Rng(0x5eed_0009);
    let file = &manifest_files(&mut rng, 1)[0];
    let text = file.to_json();
    let other = text.replacen("\\\"model:", "\\\"Model:", 1);
    assert_ne!(text, other, "the policy text names the model attribute");
    let got = node(
        "out(input.map((t) => { try { publish.parseManifestFile(t); return 'read'; } catch (e) { return e.message; } }));",
        &json!([text, other]),
    );
    assert_eq!(got[0], "read");
    let refusal = got[1].as_str().unwrap();
    assert!(
        refusal.starts_with("policy: the text hashes to policy id 0x")
            && refusal.contains(&format!(
                "the manifest signs {}",
                hex(file.manifest.policyId)
            )),
        "{refusal}"
    );
}
