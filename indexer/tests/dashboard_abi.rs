//! The dashboard's browser-side ABI (`dashboard/abi.js`) against the `sol!` bindings in core:
//! every function selector, signature, event topic and error selector the page uses equals
//! the bindings' (and the error table is complete, so any revert of either contract is named),
//! and the page's encoder and decoder agree byte for byte with alloy's on the calls the page
//! makes, including the dynamic manifest. Malformed input and data are refused with
//! `AbiError`. Runs `node` on the module (no browser needed).

use std::{collections::BTreeMap, process::Command};

use alloy::{
    primitives::{Address, B256, Bytes, U256, address, b256},
    sol_types::{SolCall, SolError, SolEvent, SolValue},
};
use otaledger_core::bindings::{
    market::{IUpdateRegistry::Manifest, UpdateMarket},
    registry::{IUpdateRegistry as Reg, UpdateRegistry},
};
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

/// Runs `script` as an ES module next to `dashboard/abi.js` with `input` as its argument and
/// returns the JSON it prints.
fn node(script: &str, input: &Value) -> Value {
    let abi = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard/abi.js");
    let prelude = format!(
        "import * as abi from {};\nconst input = JSON.parse(process.argv[1]);\nconst out = (v) => console.log(JSON.stringify(v, (_, x) => typeof x === 'bigint' ? x.toString() : x));\n",
        serde_json::to_string(&format!("file://{}", abi.canonicalize().unwrap().display()))
            .unwrap()
    );
    let output = Command::new("node")
        .args(["--input-type=module", "-e"])
        .arg(format!("{prelude}{script}"))
        .arg(input.to_string())
        .output()
        .expect("node runs (the project needs Node for its tools)");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "node printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    alloy::hex::encode_prefixed(bytes)
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
    check_call::<UpdateRegistry::signersHashCall>(f, "signersHash");
    check_call::<UpdateRegistry::transferDeviceCall>(f, "transferDevice");
    check_call::<UpdateRegistry::emergencyRevokeCall>(f, "emergencyRevoke");
    check_call::<UpdateMarket::purchaseCall>(f, "purchase");
    check_call::<UpdateMarket::claimRefundCall>(f, "claimRefund");
    check_call::<UpdateMarket::isEntitledCall>(f, "isEntitled");
    check_call::<IERC20::allowanceCall>(f, "allowance");
    check_call::<IERC20::approveCall>(f, "approve");
    check_call::<IERC20::decimalsCall>(f, "decimals");
    check_call::<IERC20::symbolCall>(f, "symbol");
    assert_eq!(
        f.as_object().unwrap().len(),
        16,
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
          transferDevice: abi.encodeCall(f.transferDevice, [i.devices[2], i.owner]),
          signersHash: abi.encodeCall(f.signersHash, [i.signers, 2]),
          isEntitled: abi.encodeCall(f.isEntitled, [i.release, 9n]),
          device: abi.encodeCall(f.device, ['0x10']),
          allowance: abi.encodeCall(f.allowance, [i.owner, i.market]),
          approve: abi.encodeCall(f.approve, [i.market, (1n << 256n) - 1n]),
          symbol: abi.encodeCall(f.symbol, []),
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
        "transferDevice": hex(UpdateRegistry::transferDeviceCall { deviceIndex: devices[2], to: owner }.abi_encode()),
        "signersHash": hex(UpdateRegistry::signersHashCall { signers: signers.clone(), threshold: 2 }.abi_encode()),
        "isEntitled": hex(UpdateMarket::isEntitledCall { releaseId: release, deviceIndex: 9 }.abi_encode()),
        "device": hex(UpdateRegistry::deviceCall { deviceIndex: 16 }.abi_encode()),
        "allowance": hex(IERC20::allowanceCall { owner, spender: market }.abi_encode()),
        "approve": hex(IERC20::approveCall { spender: market, amount: U256::MAX }.abi_encode()),
        "symbol": hex(IERC20::symbolCall {}.abi_encode()),
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
