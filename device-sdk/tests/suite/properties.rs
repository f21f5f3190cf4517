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
