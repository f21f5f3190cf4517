//! CPU time of one update check, network excluded: steps 1–4 of the pipeline (three endpoints'
//! headers decoded, re-hashed and voted on; the registry's and the market's proofs verified; the
//! policy; two secp256k1 recoveries) over answers fetched once from a real anvil.
//!
//! `cargo bench -p otaledger-device-sdk --bench check` (release), or with `--profile dev` for a
//! quick upper bound (the dev profile optimises only the hashing and curve crates).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use otaledger_device_sdk::{DeviceState, Limits, Quorum, check_update, client::Rpc};

#[path = "../tests/suite/common.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod common;

fn update_check(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fixture = rt.block_on(async {
        let w = common::World::new().await;
        let (m, a) = w.release(1).await;
        w.settle().await;
        let rpc = w.honest();
        let latest = rpc.block_number().await.unwrap();
        let number = latest - common::CONFIRMATIONS;
        let mut headers = Vec::new();
        for _ in 0..3 {
            headers.push(Ok(rpc.header(number).await.unwrap()));
        }
        let config = w.config(w.devices[0]);
        let mut limits = Limits::new(Quorum::majority(3).unwrap());
        limits.confirmations = common::CONFIRMATIONS;
        let now = w.timestamp().await;
        let request =
            otaledger_device_sdk::Checker::new(&config, &limits, DeviceState::default(), now)
                .head(number, &headers)
                .unwrap()
                .proof_request(&m);
        let registry = rpc
            .proof(request.registry.0, request.registry.1.clone(), number)
            .await
            .unwrap();
        let market = rpc
            .proof(request.market.0, request.market.1.clone(), number)
            .await
            .unwrap();
        (config, limits, now, number, headers, m, a, registry, market)
    });
    let (config, limits, now, number, headers, m, a, registry, market) = fixture;
    // Sanity: the fixture passes every step.
    check_update(
        &config,
        &limits,
        DeviceState::default(),
        now,
        number,
        &headers,
        &m,
        &registry,
        &market,
        &a,
    )
    .unwrap();
    c.bench_function("update check: 3 headers, 5 slots, 2 signatures", |b| {
        b.iter(|| {
            check_update(
                black_box(&config),
                &limits,
                DeviceState::default(),
                now,
                number,
                black_box(&headers),
                black_box(&m),
                black_box(&registry),
                black_box(&market),
                black_box(&a),
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, update_check);
criterion_main!(benches);
