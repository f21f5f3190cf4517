//! Properties on stable (the same the fuzz targets would check): mutated header RLP and mutated
//! proof nodes from a real anvil never panic the core and are refused with typed errors unless
//! the mutation left the input unchanged.

use alloy::primitives::Bytes;
use otaledger_device_sdk::{
    Limits, Quorum,
    client::Rpc,
    head::{RawHeader, check_header},
    layout,
    state::{AccountProof, verify_account},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

use crate::common::World;

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { at: usize },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
    ]
}

fn apply(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let len = out.len().max(1);
    match *m {
        Mutation::Flip { at, mask } => {
            if !out.is_empty() {
                out[at % len] ^= mask
            }
        }
        Mutation::Truncate { at } => out.truncate(at % len),
        Mutation::Insert { at, byte } => out.insert(at % (out.len() + 1), byte),
        Mutation::Remove { at } => {
            if !out.is_empty() {
                out.remove(at % len);
            }
        }
    }
    out
}

#[tokio::test]
async fn mutated_headers_and_proofs_are_refused_without_panics() {
    let w = World::new().await;
    w.release(1).await;
    w.settle().await;
    let rpc = w.honest();
    let number = rpc.block_number().await.unwrap();
    let header = rpc.header(number).await.unwrap();
    let limits = Limits::new(Quorum::new(1, 1).unwrap());
    let head = check_header(0, number, &header, &limits).unwrap();
    let slots = vec![
        layout::manufacturer_signers_hash(w.manufacturer),
        layout::model(w.model),
        layout::device(w.devices[0]),
    ];
    let address = *w.registry.address();
    let proof = rpc.proof(address, slots.clone(), number).await.unwrap();
    verify_account(&head, &limits, address, &slots, &proof).unwrap();

    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    runner
        .run(&mutation(), |m| {
            let rlp = apply(&header.rlp, &m);
            let raw = RawHeader {
                claimed_hash: header.claimed_hash,
                rlp: rlp.clone(),
            };
            let result = check_header(0, number, &raw, &limits);
            prop_assert_eq!(result.is_ok(), rlp == header.rlp);
            Ok(())
        })
        .unwrap();

    // Mutate one node of the account proof or of one storage proof.
    let targets = 1 + proof.storage_proof.len();
    runner
        .run(
            &(mutation(), 0..targets, any::<usize>()),
            |(m, target, node)| {
                let mut forged: AccountProof = proof.clone();
                let nodes = if target == 0 {
                    &mut forged.account_proof
                } else {
                    &mut forged.storage_proof[target - 1].proof
                };
                let i = node % nodes.len();
                nodes[i] = Bytes::from(apply(&nodes[i], &m));
                let result = verify_account(&head, &limits, address, &slots, &forged);
                prop_assert_eq!(result.is_ok(), forged == proof);
                Ok(())
            },
        )
        .unwrap();
}

proptest! {
    #![proptest_config(Config { cases: 2048, ..Config::default() })]

    /// Arbitrary bytes as a header: never a panic, never accepted.
    #[test]
    fn arbitrary_header_bytes_are_refused(rlp in proptest::collection::vec(any::<u8>(), 0..700)) {
        let limits = Limits::new(Quorum::new(1, 1).unwrap());
        let raw = RawHeader { claimed_hash: alloy::primitives::B256::ZERO, rlp };
        prop_assert!(check_header(0, 0, &raw, &limits).is_err());
    }
}

/// Regenerates the fuzz seed corpora in `device-sdk/fuzz/corpus/` from a real anvil:
/// `cargo test -p otaledger-device-sdk --test suite -- --ignored write_fuzz_seeds`.
#[tokio::test]
#[ignore = "writes the committed fuzz seeds; run by hand after a format change"]
async fn write_fuzz_seeds() {
    use alloy::sol_types::SolValue;

    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let rpc = w.honest();
    let number = rpc.block_number().await.unwrap();
    let header = rpc.header(number).await.unwrap();
    let slots = vec![layout::model(w.model), layout::device(w.devices[0])];
    let proof = rpc
        .proof(*w.registry.address(), slots, number)
        .await
        .unwrap();

    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    write("header", "anvil-header.bin", &header.rlp);
    for (i, s) in proof.storage_proof.iter().enumerate() {
        let mut seed = proof.storage_hash.to_vec();
        seed.extend_from_slice(s.key.as_slice());
        seed.extend_from_slice(&s.value.to_be_bytes::<32>());
        seed.extend_from_slice(&alloy::rlp::encode(&s.proof));
        write("storage_proof", &format!("anvil-slot-{i}.bin"), &seed);
    }
    let digest =
        otaledger_device_sdk::contracts::signing_digest(&m, w.chain_id, *w.registry.address());
    let mut seed = digest.to_vec();
    seed.extend_from_slice(&a.abi_encode());
    write("approval", "anvil-2-of-3.bin", &seed);
    let call = otaledger_device_sdk::contracts::registry::UpdateRegistry::publishReleaseCall {
        manifest: m.clone(),
        approval: a,
    };
    write(
        "manifest",
        "anvil-publish-release.bin",
        &alloy::sol_types::SolCall::abi_encode(&call),
    );
    write("manifest", "anvil-manifest.bin", &m.abi_encode());

    // A real bundle's header and its first stream bytes.
    use otaledger_core::bundle::{BundleSpec, ReleaseTarget, SealOptions, default_policy, seal};
    let (params, _) = otaledger_cpabe::setup(&mut otaledger_cpabe::rand_core::OsRng);
    let mut bundle = Vec::new();
    seal(
        &params,
        &BundleSpec {
            target: ReleaseTarget {
                chain_id: w.chain_id,
                registry: *w.registry.address(),
                model_id: w.model,
                version: 1,
            },
            policy: &default_policy(w.model, 1),
            options: SealOptions::default(),
        },
        &[7u8; 100][..],
        100,
        &mut bundle,
        &mut otaledger_cpabe::rand_core::OsRng,
    )
    .unwrap();
    write("bundle_header", "sealed-100-bytes.bin", &bundle);
}
