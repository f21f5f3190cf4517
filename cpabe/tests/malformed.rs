//! Decoding rejects malformed, truncated, trailing, off-curve, wrong-subgroup,
//! identity and non-canonical encodings with typed errors, and no input
//! panics (a proptest stand-in for the cargo-fuzz target in `cpabe/fuzz`).

use otaledger_cpabe::hazmat::blstrs::{G1Affine, G2Affine};
use otaledger_cpabe::limits::{MAX_KEY_ATTRIBUTES, MAX_POLICY_DEPTH};
use otaledger_cpabe::{
    Capsule, Error, GroupKind, MasterKey, Policy, PublicKey, SecretKey, decapsulate, encapsulate,
    keygen, setup,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Fixture {
    pk: PublicKey,
    msk: MasterKey,
    sk: SecretKey,
    capsule: Capsule,
}

fn fixture() -> Fixture {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let (pk, msk) = setup(&mut rng);
    let policy = Policy::parse(r#""a" and ("b" or 2 of ("c", "d", "e"))"#).unwrap();
    let (capsule, _) = encapsulate(&pk, &policy, b"", &mut rng).unwrap();
    let sk = keygen(&msk, &["a", "c", "e"], &mut rng).unwrap();
    Fixture {
        pk,
        msk,
        sk,
        capsule,
    }
}

/// Offsets of the first G1 point of the capsule's rows and of its first G2 point.
fn capsule_offsets(c: &Capsule) -> (usize, usize) {
    let bytes = c.to_bytes();
    let policy_len = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let g2 = 8 + policy_len;
    (g2 + 3 * 96 + 2, g2)
}

/// A 48-byte compressed encoding whose x is on no curve point (`off == true`)
/// or on a point outside the prime-order subgroup (`off == false`).
fn bad_g1(off: bool) -> [u8; 48] {
    for x in 1u8..=255 {
        let mut b = [0u8; 48];
        b[0] = 0x80;
        b[47] = x;
        let on_curve = bool::from(G1Affine::from_compressed_unchecked(&b).is_some());
        let in_group = bool::from(G1Affine::from_compressed(&b).is_some());
        if off && !on_curve || !off && on_curve && !in_group {
            return b;
        }
    }
    unreachable!("a small x of each kind exists")
}

fn bad_g2(off: bool) -> [u8; 96] {
    for x in 1u8..=255 {
        let mut b = [0u8; 96];
        b[0] = 0x80;
        b[95] = x;
        let on_curve = bool::from(G2Affine::from_compressed_unchecked(&b).is_some());
        let in_group = bool::from(G2Affine::from_compressed(&b).is_some());
        if off && !on_curve || !off && on_curve && !in_group {
            return b;
        }
    }
    unreachable!("a small x of each kind exists")
}

fn splice(bytes: &[u8], at: usize, with: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + with.len()].copy_from_slice(with);
    out
}

/// Decodes one object kind, dropping the value.
type Decoder = fn(&[u8]) -> Result<(), Error>;

#[test]
fn every_truncation_is_reported() {
    let f = fixture();
    let encodings: [(&str, Vec<u8>, Decoder); 5] = [
        ("pk", f.pk.to_bytes(), |b| {
            PublicKey::from_bytes(b).map(drop)
        }),
        ("msk", f.msk.to_bytes(), |b| {
            MasterKey::from_bytes(b).map(drop)
        }),
        ("sk", f.sk.to_bytes(), |b| {
            SecretKey::from_bytes(b).map(drop)
        }),
        ("capsule", f.capsule.to_bytes(), |b| {
            Capsule::from_bytes(b).map(drop)
        }),
        ("policy", f.capsule.policy().to_bytes(), |b| {
            Policy::from_bytes(b).map(drop)
        }),
    ];
    for (name, bytes, decode) in encodings {
        decode(&bytes).unwrap();
        for cut in 0..bytes.len() {
            let e = decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(e, Error::Truncated { .. }),
                "{name} cut at {cut}: {e:?}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            decode(&long),
            Err(Error::TrailingBytes {
                offset: bytes.len(),
                trailing: 1
            }),
            "{name}"
        );
    }
}

#[test]
fn headers_are_checked() {
    let bytes = fixture().capsule.to_bytes();
    assert_eq!(
        Capsule::from_bytes(&splice(&bytes, 0, b"XX")),
        Err(Error::BadMagic { found: *b"XX" })
    );
    assert_eq!(
        Capsule::from_bytes(&splice(&bytes, 2, &[2])),
        Err(Error::UnsupportedVersion { found: 2 })
    );
    assert_eq!(
        Capsule::from_bytes(&splice(&bytes, 3, &[3])),
        Err(Error::WrongKind {
            expected: 4,
            found: 3
        })
    );
    assert!(matches!(
        SecretKey::from_bytes(&bytes),
        Err(Error::WrongKind {
            expected: 3,
            found: 4
        })
    ));
}

#[test]
fn bad_points_are_rejected_with_their_offset() {
    let f = fixture();
    let bytes = f.capsule.to_bytes();
    let (g1_at, g2_at) = capsule_offsets(&f.capsule);
    let g1 = |b: &[u8]| Capsule::from_bytes(&splice(&bytes, g1_at, b));
    let g2 = |b: &[u8]| Capsule::from_bytes(&splice(&bytes, g2_at, b));
    let invalid = |group, offset| Err(Error::InvalidPoint { group, offset });
    assert_eq!(
        g1(&bad_g1(true)),
        invalid(GroupKind::G1, g1_at),
        "off-curve G1"
    );
    assert_eq!(
        g1(&bad_g1(false)),
        invalid(GroupKind::G1, g1_at),
        "G1 outside the subgroup"
    );
    assert_eq!(
        g2(&bad_g2(true)),
        invalid(GroupKind::G2, g2_at),
        "off-curve G2"
    );
    assert_eq!(
        g2(&bad_g2(false)),
        invalid(GroupKind::G2, g2_at),
        "G2 outside the subgroup"
    );
    let mut identity = [0u8; 96];
    identity[0] = 0xc0;
    assert_eq!(
        g1(&identity[..48]),
        Err(Error::IdentityPoint {
            group: GroupKind::G1,
            offset: g1_at
        })
    );
    assert_eq!(
        g2(&identity),
        Err(Error::IdentityPoint {
            group: GroupKind::G2,
            offset: g2_at
        })
    );
    // x >= p (non-canonical), with the compression flag set.
    let mut big = [0xffu8; 96];
    big[0] = 0x9f;
    assert_eq!(g1(&big[..48]), invalid(GroupKind::G1, g1_at));
    assert_eq!(g2(&big), invalid(GroupKind::G2, g2_at));
    // Uncompressed-form flag where a compressed point is expected.
    assert_eq!(g1(&[0u8; 48]), invalid(GroupKind::G1, g1_at));

    // Secret keys: the same checks on their G1 and G2 components.
    let sk = f.sk.to_bytes();
    assert_eq!(
        SecretKey::from_bytes(&splice(&sk, 4, &bad_g2(false))).err(),
        Some(Error::InvalidPoint {
            group: GroupKind::G2,
            offset: 4
        })
    );
    assert_eq!(
        SecretKey::from_bytes(&splice(&sk, 4 + 288, &bad_g1(false))).err(),
        Some(Error::InvalidPoint {
            group: GroupKind::G1,
            offset: 4 + 288
        })
    );

    // Public keys: GT elements outside the subgroup, and the identity.
    let pk = f.pk.to_bytes();
    let gt_at = 4 + 2 * 96;
    assert_eq!(
        PublicKey::from_bytes(&splice(&pk, gt_at, &[7u8; 288])),
        Err(Error::InvalidPoint {
            group: GroupKind::Gt,
            offset: gt_at
        })
    );
    assert_eq!(
        PublicKey::from_bytes(&splice(&pk, gt_at, &[0u8; 288])),
        Err(Error::IdentityPoint {
            group: GroupKind::Gt,
            offset: gt_at
        })
    );
}

#[test]
fn bad_scalars_and_structure_are_rejected() {
    let f = fixture();
    let msk = f.msk.to_bytes();
    assert_eq!(
        MasterKey::from_bytes(&splice(&msk, 4, &[0u8; 32])).err(),
        Some(Error::InvalidScalar { offset: 4 })
    );
    assert_eq!(
        MasterKey::from_bytes(&splice(&msk, 36, &[0xffu8; 32])).err(),
        Some(Error::InvalidScalar { offset: 36 })
    );

    // Secret key: attribute count 0, too many, unsorted, non-UTF-8.
    let sk = f.sk.to_bytes();
    let count_at = 4 + 288 + 144;
    assert_eq!(
        SecretKey::from_bytes(&splice(&sk, count_at, &[0, 0])).err(),
        Some(Error::NoAttributes)
    );
    let too_many = (MAX_KEY_ATTRIBUTES as u16 + 1).to_be_bytes();
    assert!(matches!(
        SecretKey::from_bytes(&splice(&sk, count_at, &too_many)),
        Err(Error::LimitExceeded {
            what: "key attributes",
            ..
        })
    ));
    // Attributes are "a", "c", "e": rename "c" to "0" so it sorts before "a".
    let second = count_at + 2 + 3 + 144;
    assert_eq!(
        SecretKey::from_bytes(&splice(&sk, second + 2, b"0")).err(),
        Some(Error::UnsortedAttributes { offset: second })
    );
    assert_eq!(
        SecretKey::from_bytes(&splice(&sk, second + 2, &[0xff])).err(),
        Some(Error::InvalidUtf8 { offset: second + 2 })
    );

    // Capsule: errors inside the embedded policy body report offsets in the capsule.
    let c = f.capsule.to_bytes();
    assert_eq!(
        Capsule::from_bytes(&splice(&c, 8, &[9])),
        Err(Error::InvalidTag { tag: 9, offset: 8 })
    );
    assert_eq!(
        Capsule::from_bytes(&splice(&c, 14, &[0xff])),
        Err(Error::InvalidUtf8 { offset: 14 })
    );

    // Capsule: row count that does not match its policy.
    let c = f.capsule.to_bytes();
    let (g1_at, _) = capsule_offsets(&f.capsule);
    assert_eq!(
        Capsule::from_bytes(&splice(&c, g1_at - 2, &[0, 4])),
        Err(Error::RowCountMismatch {
            expected: 5,
            found: 4
        })
    );
}

#[test]
fn bad_policy_bodies_are_rejected() {
    let header = [b'O', b'C', 1, 5];
    let policy = |body: &[u8]| Policy::from_bytes(&[&header[..], body].concat());
    assert_eq!(policy(&[9]), Err(Error::InvalidTag { tag: 9, offset: 4 }));
    assert_eq!(policy(&[2, 0, 0]), Err(Error::EmptyGate));
    assert_eq!(
        policy(&[4, 0, 0, 0, 1, 1, 0, 1, b'a']),
        Err(Error::InvalidThreshold { k: 0, n: 1 })
    );
    assert_eq!(
        policy(&[4, 0, 2, 0, 1, 1, 0, 1, b'a']),
        Err(Error::InvalidThreshold { k: 2, n: 1 })
    );
    assert!(matches!(
        policy(&[1, 0, 0]),
        Err(Error::InvalidAttribute { len: 0, .. })
    ));
    // A deep chain of one-child ANDs stops at the depth limit, before the input ends.
    let deep: Vec<u8> = [2u8, 0, 1].repeat(MAX_POLICY_DEPTH + 5);
    assert!(matches!(
        policy(&deep),
        Err(Error::LimitExceeded {
            what: "policy depth",
            ..
        })
    ));
    // A gate claiming 65535 children in a short input fails as truncated, without allocating for them.
    assert!(matches!(
        policy(&[3, 0xff, 0xff, 1, 0, 1, b'a']),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn serde_uses_the_checked_encoding() {
    let f = fixture();
    let json = serde_json::to_string(&f.capsule).unwrap();
    let back: Capsule = serde_json::from_str(&json).unwrap();
    assert_eq!(back, f.capsule);
    let sk: SecretKey = serde_json::from_str(&serde_json::to_string(&f.sk).unwrap()).unwrap();
    assert_eq!(sk.to_bytes(), f.sk.to_bytes());
    let mut tampered = f.pk.to_bytes();
    tampered[10] ^= 1;
    assert!(serde_json::from_str::<PublicKey>(&format!("\"{}\"", hex::encode(tampered))).is_err());
    assert!(serde_json::from_str::<Capsule>("\"zz\"").is_err());
}

fn mutate(bytes: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, x) in edits {
        if !out.is_empty() {
            let i = at % out.len();
            out[i] ^= x;
        }
    }
    if let Some(cut) = cut {
        out.truncate(cut % (out.len() + 1));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes: never a panic; anything accepted is canonical.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(c) = Capsule::from_bytes(&bytes) { prop_assert_eq!(c.to_bytes(), bytes.clone()); }
        if let Ok(k) = SecretKey::from_bytes(&bytes) { prop_assert_eq!(k.to_bytes(), bytes.clone()); }
        if let Ok(p) = Policy::from_bytes(&bytes) { prop_assert_eq!(p.to_bytes(), bytes.clone()); }
        let _ = PublicKey::from_bytes(&bytes);
        let _ = MasterKey::from_bytes(&bytes);
    }

    /// Policy text and JSON: never a panic; anything accepted prints and
    /// re-parses to the same canonical text.
    #[test]
    fn random_policy_text_never_panics(
        text in prop_oneof![
            r#"[a-c0-3 (),"\\u{}é]{0,40}|(and|or|of|2|\(|\)|,| |a|b|"x"|"\\u\{e9\}")*"#,
            any::<String>(),
        ]
    ) {
        if let Ok(p) = Policy::parse(&text) {
            let shown = p.to_string();
            prop_assert_eq!(Policy::parse(&shown).map(|q| q.to_string()), Ok(shown));
        }
        let _ = Policy::from_json(&text);
    }

    /// Mutated valid encodings: never a panic; decapsulating whatever decodes never panics.
    #[test]
    fn mutated_encodings_never_panic(
        edits in prop::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in prop::option::of(any::<usize>()),
    ) {
        let f = fixture_cached();
        if let Ok(c) = Capsule::from_bytes(&mutate(&f.1, &edits, cut)) {
            prop_assert_eq!(c.to_bytes().len(), f.1.len());
            let _ = decapsulate(&f.0.sk, &c, b"");
        }
        if let Ok(k) = SecretKey::from_bytes(&mutate(&f.2, &edits, cut)) {
            let _ = decapsulate(&k, &f.0.capsule, b"");
        }
        let _ = Policy::from_bytes(&mutate(&f.0.capsule.policy().to_bytes(), &edits, cut));
    }
}

fn fixture_cached() -> &'static (Fixture, Vec<u8>, Vec<u8>) {
    static F: std::sync::OnceLock<(Fixture, Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let f = fixture();
        let (c, k) = (f.capsule.to_bytes(), f.sk.to_bytes());
        (f, c, k)
    })
}

/// A deserializer with no recursion limit of its own (as in bincode or
/// postcard) feeding an endless `{"and": [{"and": [...]}]}`: the policy's serde
/// form must stop at the depth limit, not recurse until the stack overflows.
mod endless {
    use serde::de::{
        self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, SeqAccess,
        VariantAccess, Visitor,
    };
    use serde::forward_to_deserialize_any;

    type E = de::value::Error;

    /// One `{"and": [<Node>]}` level, forever.
    pub(super) struct Node;
    struct Children(bool);

    impl<'de> Deserializer<'de> for Node {
        type Error = E;
        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            v.visit_enum(self)
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            struct enum identifier ignored_any
        }
    }

    impl<'de> EnumAccess<'de> for Node {
        type Error = E;
        type Variant = Self;
        fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), E> {
            Ok((seed.deserialize("and".into_deserializer())?, self))
        }
    }

    impl<'de> VariantAccess<'de> for Node {
        type Error = E;
        fn unit_variant(self) -> Result<(), E> {
            Err(de::Error::custom("not a unit variant"))
        }
        fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, E> {
            seed.deserialize(Children(true))
        }
        fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, E> {
            Err(de::Error::custom("not a tuple variant"))
        }
        fn struct_variant<V: Visitor<'de>>(
            self,
            _: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, E> {
            Err(de::Error::custom("not a struct variant"))
        }
    }

    impl<'de> Deserializer<'de> for Children {
        type Error = E;
        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            v.visit_seq(self)
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            struct enum identifier ignored_any
        }
    }

    impl<'de> SeqAccess<'de> for Children {
        type Error = E;
        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, E> {
            if std::mem::take(&mut self.0) {
                seed.deserialize(Node).map(Some)
            } else {
                Ok(None)
            }
        }
    }
}

#[test]
fn serde_policy_nesting_is_bounded_in_any_format() {
    use serde::Deserialize;
    let e = Policy::deserialize(endless::Node).unwrap_err();
    assert!(e.to_string().contains("depth"), "{e}");
    // JSON: a tree one level too deep is refused while reading, with the limit named.
    let deep = format!(
        "{}{{\"attr\":\"a\"}}{}",
        "{\"and\":[".repeat(MAX_POLICY_DEPTH),
        "]}".repeat(MAX_POLICY_DEPTH)
    );
    assert!(
        matches!(Policy::from_json(&deep), Err(Error::Json { message }) if message.contains("depth"))
    );
    // Leaves and nodes are counted while reading, before a huge input is built up.
    let json = |children: &str, n: usize| format!("{{\"or\":[{}]}}", vec![children; n].join(","));
    let wide = json(r#"{"attr":"a"}"#, 600);
    assert!(
        matches!(Policy::from_json(&wide), Err(Error::Json { message }) if message.contains("more than 512 leaves"))
    );
    let empty = json(r#"{"and":[]}"#, 20_000);
    assert!(
        matches!(Policy::from_json(&empty), Err(Error::Json { message }) if message.contains("nodes"))
    );
}
