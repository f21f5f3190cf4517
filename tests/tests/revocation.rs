//! Revocation mid-rollout: release 1 is published and bought for part of a fleet, the
//! bought devices install it (the demo's round); the owner then buys it for two more
//! devices, and before those update the manufacturer's operator revokes the release
//! (`release revoke --emergency`). The two refuse it (exit code 22, a policy refusal
//! naming the revocation) and stay on version 0, the devices that installed keep
//! version 1, the owner gets the two purchases refunded (`refund`, balances read on
//! chain; a second refund is refused), and a fresh indexer shows the revocation, the
//! refunds and a fleet without an installable release.

use alloy::{
    primitives::{Address, B256, U256},
    providers::{Provider, ProviderBuilder},
};
use otaledger_e2e::{
    FreshPostgres, Indexer, TestChain, device_run_once, fleet, installed_version, run_json,
};
use serde_json::Value;

const DEVICES: u32 = 6;
const BUYERS: u32 = 2;
/// The demo's price per device (0.01 ETH).
const PRICE_WEI: u128 = 10_000_000_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_release_is_refused_by_devices_that_had_not_installed_and_refunded() {
    let chain = TestChain::spawn();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let summary = chain.demo(&state, DEVICES, BUYERS);
    let release: B256 = serde_json::from_value(summary["release_id"].clone()).unwrap();
    let market: Address = serde_json::from_value(summary["market"].clone()).unwrap();
    let release_hex = release.to_string();
    let devices = fleet(&state, &summary);
    let (installed, late): (Vec<_>, Vec<_>) = devices.iter().partition(|d| d.bought);
    assert_eq!(installed.len(), BUYERS as usize);
    for d in &installed {
        assert_eq!(installed_version(&d.dir), 1, "device {}", d.index);
    }
    // Two devices bought after the round: paid for, not installed.
    let late: Vec<_> = late.into_iter().take(2).collect();
    let late_indexes: Vec<u64> = late.iter().map(|d| d.index).collect();
    let bought = chain.purchase(&state, &release_hex, &late_indexes);
    assert_eq!(
        bought["devices"],
        serde_json::json!(late_indexes),
        "{bought}"
    );

    // The operator revokes it.
    let reason = "CVE in the bootloader";
    let revoked = run_json(&mut chain.cli(
        &state,
        &[
            "release",
            "revoke",
            "--release",
            &release_hex,
            "--reason",
            reason,
            "--emergency",
        ],
    ));
    assert_eq!(revoked["emergency"], true, "{revoked}");

    // The devices that had not installed refuse it at the policy step and stay on 0.
    for d in &late {
        let (code, events) = device_run_once(&d.dir);
        let result = events.last().cloned().unwrap_or_default();
        assert_eq!(code, 22, "device {}: {events:?}", d.index);
        assert_eq!(result["exitCode"], 22, "device {}: {result}", d.index);
        assert_eq!(result["class"], "revoked", "device {}: {result}", d.index);
        assert_eq!(result["step"], 3, "device {}: {result}", d.index);
        assert_eq!(installed_version(&d.dir), 0, "device {}", d.index);
    }
    // The devices that installed it keep it: up to date, no rollback, no second install.
    for d in &installed {
        let (code, events) = device_run_once(&d.dir);
        let result = events.last().cloned().unwrap_or_default();
        assert_eq!(code, 10, "device {}: {events:?}", d.index);
        assert_eq!(result["result"]["outcome"], "upToDate", "{result}");
        assert_eq!(installed_version(&d.dir), 1, "device {}", d.index);
    }

    // The owner claims the refunds of the two uninstalled purchases.
    let provider = ProviderBuilder::new().connect_http(chain.anvil.endpoint_url());
    let owner = chain.key.address();
    let owner_before = provider.get_balance(owner).await.unwrap();
    let market_before = provider.get_balance(market).await.unwrap();
    let mut refund = chain.cli(&state, &["refund", "--release", &release_hex]);
    for d in &late {
        refund.args(["--device", &d.index.to_string()]);
    }
    let refunded = run_json(&mut refund);
    let owner_after = provider.get_balance(owner).await.unwrap();
    let market_after = provider.get_balance(market).await.unwrap();
    let amount = U256::from(PRICE_WEI * late.len() as u128);
    assert_eq!(market_before - market_after, amount, "the market paid out");
    let refund_tx: B256 = serde_json::from_value(refunded["tx"].clone()).unwrap();
    let receipt = provider
        .get_transaction_receipt(refund_tx)
        .await
        .unwrap()
        .unwrap();
    assert!(receipt.status());
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    assert_eq!(
        owner_after + fee - owner_before,
        amount,
        "the owner was paid"
    );

    // A second refund of the same purchases is refused, and pays nothing.
    let again = refund.output().unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("UpdateMarketNotEntitled"), "{err}");
    assert_eq!(provider.get_balance(market).await.unwrap(), market_after);

    // The indexer, restarted on the demo's own SQLite database (which holds the install
    // reports of the round), and a fresh one on PostgreSQL, show the revocation and refunds.
    let sqlite = format!("sqlite://{}", state.join("indexer.sqlite").display());
    let postgres = FreshPostgres::create().await;
    for database in [sqlite.as_str(), postgres.url.as_str()] {
        let indexer = Indexer::start(&chain, &state, database).await;
        let r = indexer.get(&format!("/v1/releases/{release_hex}")).await;
        let revocations = r["revocations"].as_array().unwrap();
        assert_eq!(revocations.len(), 1, "{database}: {r}");
        assert_eq!(revocations[0]["reason"], reason, "{database}");
        assert_eq!(revocations[0]["emergency"], 1, "{database}");
        assert_eq!(revocations[0]["tx_hash"], revoked["tx"], "{database}");
        for d in &late {
            let trail = indexer.get(&format!("/v1/devices/{}", d.index)).await;
            let refunds = trail["refunds"].as_array().unwrap();
            assert_eq!(refunds.len(), 1, "{database}: {trail}");
            assert_eq!(refunds[0]["tx_hash"], refunded["tx"], "{database}");
            // No release left to install.
            let (status, body) = indexer
                .get_status(&format!("/v1/devices/{}/update", d.index))
                .await;
            assert_eq!(status, 404, "{database}: {body}");
        }
        // The dashboard's fleet: the model has no installable release any more (status
        // `none`, drawn blue); on the demo's database the installs of the round stay shown.
        let view = indexer.get("/v1/fleet").await;
        let fleet_devices = view["devices"].as_array().unwrap();
        assert_eq!(fleet_devices.len(), devices.len(), "{database}");
        for f in fleet_devices {
            assert_eq!(f["latest_release"], Value::Null, "{database}: {f}");
            assert_eq!(f["status"], "none", "{database}: {f}");
            let index = f["index"].as_u64().unwrap();
            let was_installed = installed.iter().any(|d| d.index == index);
            if database == sqlite && was_installed {
                assert_eq!(f["verdict"], "installed", "{f}");
                assert_eq!(
                    f["installed"].as_str().map(|v| v.trim_start_matches('0')),
                    Some("1"),
                    "{f}"
                );
            } else if database == sqlite {
                assert_eq!(f["verdict"], Value::Null, "{f}");
            }
        }
    }
    postgres.drop_database().await;
}
