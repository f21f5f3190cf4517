//! Property tests: for random policies (AND / OR / k-of-n trees, attributes
//! reused) and random attribute sets, decapsulation succeeds exactly when the
//! plain boolean evaluator says the set satisfies the policy, and then gives
//! the encapsulated key.

use otaledger_cpabe::{Error, Policy, PolicyNode, decapsulate, encapsulate, keygen, setup};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const UNIVERSE: [&str; 6] = [
    "model:x",
    "region:eu",
    "region:in",
    "release:42",
    "fw>=7",
    "ünï \"q\"",
];

fn node() -> impl Strategy<Value = PolicyNode> {
    let leaf = (0..UNIVERSE.len()).prop_map(|i| PolicyNode::attr(UNIVERSE[i]));
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(PolicyNode::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(PolicyNode::Or),
            prop::collection::vec(inner, 1..5)
                .prop_flat_map(|of| (1..=of.len(), Just(of)))
                .prop_map(|(k, of)| PolicyNode::Threshold { k, of }),
        ]
    })
}

fn attribute_set() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::btree_set(0..UNIVERSE.len(), 1..=UNIVERSE.len())
        .prop_map(|s| s.into_iter().map(|i| UNIVERSE[i]).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn decapsulates_iff_satisfied(root in node(), attrs in attribute_set(), seed in any::<[u8; 32]>()) {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let (pk, msk) = setup(&mut rng);
        let policy = Policy::new(root).unwrap();
        let (capsule, key) = encapsulate(&pk, &policy, b"ctx", &mut rng).unwrap();
        let sk = keygen(&msk, &attrs, &mut rng).unwrap();
        match decapsulate(&sk, &capsule, b"ctx") {
            Ok(k) => {
                prop_assert!(policy.is_satisfied_by(&attrs), "decapsulated without satisfying {policy}");
                prop_assert_eq!(k, key);
            }
            Err(e) => {
                prop_assert_eq!(e, Error::PolicyNotSatisfied);
                prop_assert!(!policy.is_satisfied_by(&attrs), "refused although {attrs:?} satisfies {policy}");
            }
        }
    }

    #[test]
    fn policy_text_json_and_bytes_round_trip(root in node()) {
        let policy = Policy::new(root).unwrap();
        prop_assert_eq!(&Policy::from_bytes(&policy.to_bytes()).unwrap(), &policy);
        prop_assert_eq!(&Policy::from_json(&policy.to_json()).unwrap(), &policy);
        // The text form is canonical up to single-child AND/OR wrappers, which it drops.
        let reparsed = Policy::parse(&policy.to_string()).unwrap();
        prop_assert_eq!(reparsed.to_string(), policy.to_string());
        for attrs in [&UNIVERSE[..2], &UNIVERSE[1..4], &UNIVERSE[..]] {
            prop_assert_eq!(reparsed.is_satisfied_by(attrs), policy.is_satisfied_by(attrs));
        }
    }
}

#[test]
fn wide_and_deep_policies() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let (pk, msk) = setup(&mut rng);
    let names: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
    let and = Policy::new(PolicyNode::And(
        names.iter().map(PolicyNode::attr).collect(),
    ))
    .unwrap();
    let t = Policy::new(PolicyNode::Threshold {
        k: 7,
        of: names[..12].iter().map(PolicyNode::attr).collect(),
    })
    .unwrap();
    let sk_all = keygen(&msk, &names, &mut rng).unwrap();
    let sk_seven = keygen(&msk, &names[5..12], &mut rng).unwrap();
    for (policy, ok_seven) in [(and, false), (t, true)] {
        let (capsule, key) = encapsulate(&pk, &policy, b"", &mut rng).unwrap();
        assert_eq!(decapsulate(&sk_all, &capsule, b"").unwrap(), key);
        assert_eq!(decapsulate(&sk_seven, &capsule, b"").is_ok(), ok_seven);
    }
}
