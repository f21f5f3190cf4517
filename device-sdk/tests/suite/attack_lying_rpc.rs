//! Attack: lying RPC endpoints. Forged storage values, forged or truncated proofs, a header
//! whose claimed hash does not match its fields, a minority of endpoints on a fork, all
//! endpoints but one lying. Refused in steps 1 and 2, or outvoted / retried.

use otaledger_device_sdk::{Error, HeaderFault, client::Rpc};

use crate::common::{Liar, Lie, World, refused};

#[tokio::test]
async fn forged_and_truncated_proofs_are_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    for (lie, expect) in [
        (Lie::ForgeStorageValue, "storage"),
        (Lie::ForgeStorageNode, "storage"),
        (Lie::TruncateStorageProof, "storage"),
        (Lie::TruncateAccountProof, "account"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let client = w.client(&dir, vec![Liar::boxed(w.honest(), lie)]);
        let err = refused(&client, &m, &a).await;
        match (expect, &err) {
            ("storage", Error::StorageProof { address, .. }) => {
                assert_eq!(*address, *w.registry.address(), "{lie:?}")
            }
            ("account", Error::AccountProof { address, .. }) => {
                assert_eq!(*address, *w.registry.address(), "{lie:?}")
            }
            _ => panic!("{lie:?}: {err:?}"),
        }
    }
}

#[tokio::test]
async fn answers_for_other_slots_accounts_or_of_endless_size_are_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.client(&dir, vec![Liar::boxed(w.honest(), Lie::WrongSlot)]);
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::ProofWrongSlots { address, .. } if address == *w.registry.address()
    ));
    let client = w.client(&dir, vec![Liar::boxed(w.honest(), Lie::WrongAccount)]);
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::ProofWrongAccount { expected, .. } if expected == *w.registry.address()
    ));
    let client = w.client(&dir, vec![Liar::boxed(w.honest(), Lie::Bloat)]);
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::ProofTooLarge {
            slot: None,
            max_nodes: 72,
            ..
        }
    ));
}

#[tokio::test]
async fn a_header_whose_hash_does_not_match_its_fields_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.client(
        &dir,
        vec![Liar::boxed(w.honest(), Lie::HeaderFieldsMismatch)],
    );
    let err = refused(&client, &m, &a).await;
    assert!(
        matches!(&err, Error::NoQuorum { faults, .. }
            if matches!(faults[..], [HeaderFault::HashMismatch { endpoint: 0, .. }])),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_minority_on_a_fork_is_outvoted() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    // The forked endpoint is asked for proofs first: its proofs cannot verify against the
    // majority's state root, so the client moves on to an honest endpoint.
    let rpcs: Vec<Box<dyn Rpc>> = vec![
        Liar::boxed(w.honest(), Lie::Fork),
        Box::new(w.honest()),
        Box::new(w.honest()),
    ];
    let update = w.client(&dir, rpcs).check(&m, &a).await.unwrap();
    assert_eq!(update.manifest, m);

    // Two of three on the fork (each with its own fork) and the honest one alone: no quorum.
    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = vec![
        Liar::boxed(w.honest(), Lie::Fork),
        Liar::boxed(w.honest(), Lie::HeaderFieldsMismatch),
        Box::new(w.honest()),
    ];
    let client = w.client(&dir, rpcs);
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::NoQuorum {
            agreeing: 1,
            needed: 2,
            ..
        }
    ));
}

#[tokio::test]
async fn all_endpoints_but_one_lying_about_state_cannot_change_the_answer() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    // Headers are honest (a quorum), proofs are forged by all but the last endpoint.
    let rpcs: Vec<Box<dyn Rpc>> = vec![
        Liar::boxed(w.honest(), Lie::ForgeStorageValue),
        Liar::boxed(w.honest(), Lie::TruncateAccountProof),
        Liar::boxed(w.honest(), Lie::ForgeStorageNode),
        Liar::boxed(w.honest(), Lie::TruncateStorageProof),
        Box::new(w.honest()),
    ];
    let client = w.client(&dir, rpcs);
    let update = client.check(&m, &a).await.unwrap();
    assert_eq!(update.manifest, m);

    // And when every endpoint lies, the last lie's error is returned, nothing is accepted.
    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = vec![
        Liar::boxed(w.honest(), Lie::ForgeStorageValue),
        Liar::boxed(w.honest(), Lie::TruncateAccountProof),
        Liar::boxed(w.honest(), Lie::ForgeStorageNode),
    ];
    let client = w.client(&dir, rpcs);
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::StorageProof { .. }
    ));
}
