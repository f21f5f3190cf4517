//! Property tests: for random policies (AND / OR / k-of-n trees; every
//! attribute once, as FAME requires) and random attribute sets, decapsulation
//! succeeds exactly when the plain boolean evaluator says the set satisfies
//! the policy, and then gives the encapsulated key.

use otaledger_cpabe::{Error, Policy, PolicyNode, decapsulate, encapsulate, keygen, setup};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NAMES: [&str; 6] = [
    "model:x",
    "region:eu",
    "region:in",
    "release:42",
    "fw>=7",
    "ünï \"q\"",
];

/// Leaf `i`'s attribute: a few realistic and awkward names, then numbered ones.
fn name(i: usize) -> String {
    NAMES
        .get(i)
        .map_or_else(|| format!("attr:{i}"), |n| (*n).to_owned())
}

/// Random trees; the leaves are then named apart in depth-first order.
fn node() -> impl Strategy<Value = PolicyNode> {
    let leaf = Just(PolicyNode::attr("?"));
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(PolicyNode::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(PolicyNode::Or),
            prop::collection::vec(inner, 1..5)
                .prop_flat_map(|of| (1..=of.len(), Just(of)))
                .prop_map(|(k, of)| PolicyNode::Threshold { k, of }),
        ]
    })
    .prop_map(|mut root| {
        fn number(n: &mut PolicyNode, next: &mut usize) {
            match n {
                PolicyNode::Attr(a) => {
                    *a = name(*next);
                    *next += 1;
                }
                PolicyNode::And(c) | PolicyNode::Or(c) | PolicyNode::Threshold { of: c, .. } => {
                    c.iter_mut().for_each(|c| number(c, next))
                }
                other => panic!("a node kind this test does not know: {other:?}"),
            }
        }
        number(&mut root, &mut 0);
        root
    })
}

/// The attributes of the leaves whose bit is set, plus one the policy never names.
fn attribute_set(leaves: usize, bits: u64) -> Vec<String> {
    (0..leaves)
        .filter(|i| bits >> (i % 64) & 1 == 1)
        .map(name)
        .chain(["guest".to_owned()])
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn decapsulates_iff_satisfied(root in node(), bits in any::<u64>(), seed in any::<[u8; 32]>()) {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let (pk, msk) = setup(&mut rng);
        let policy = Policy::new(root).unwrap();
        let attrs = attribute_set(policy.leaf_count(), bits);
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
        for bits in [0b11, 0b1110, u64::MAX, 0x5555_5555_5555_5555] {
            let attrs = attribute_set(policy.leaf_count(), bits);
            prop_assert_eq!(reparsed.is_satisfied_by(&attrs), policy.is_satisfied_by(&attrs));
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
