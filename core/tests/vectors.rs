//! The committed test vectors of `docs/bundle-format.md` (core/testdata/):
//! a bundle (header fields, key commitment, each segment) and a key delivery.
//! A device implementation can check itself against the same files.
//!
//! The bundle vector is regenerated here from its seed and must equal the
//! committed bytes, so any change to the format shows up as a failing test.
//! After an intended format change, rewrite the files with
//! `OTALEDGER_WRITE_VECTORS=1 cargo test -p otaledger-core --test vectors`.

use std::path::PathBuf;

use alloy::{
    primitives::{Address, B256, keccak256},
    signers::local::PrivateKeySigner,
};
use otaledger_core::{
    bundle::{
        BundleSpec, Header, ReleaseTarget, SealOptions, default_policy, model_attribute, open,
        release_attribute, seal,
    },
    key_delivery::{KeyDelivery, Recipient, identity_public_key},
};
use otaledger_cpabe::{PublicKey, SecretKey, keygen, setup};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const SEED: [u8; 32] = *b"otaledger bundle test vectors v1";

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn writing() -> bool {
    std::env::var_os("OTALEDGER_WRITE_VECTORS").is_some()
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BundleVector {
    description: String,
    seed: String,
    chain_id: u64,
    registry: Address,
    model_id: u32,
    version: u64,
    segment_size: u32,
    policy: String,
    policy_id: B256,
    /// `otaledger-cpabe` public parameters.
    params: String,
    device_attributes: Vec<String>,
    /// `otaledger-cpabe` secret key of a paid device.
    device_key: String,
    image: String,
    image_sha256: B256,
    nonce_prefix: String,
    header: String,
    header_sha256: B256,
    /// Header bytes the CP-ABE key is bound to.
    cpabe_context_len: usize,
    key_commitment: String,
    segments: Vec<String>,
    bundle_sha256: B256,
    bundle_size: u64,
}

fn generate_bundle() -> BundleVector {
    let mut rng = ChaCha20Rng::from_seed(SEED);
    let (params, master) = setup(&mut rng);
    let (model_id, version) = (7, 42);
    let attributes = vec![
        model_attribute(model_id),
        release_attribute(model_id, version),
        "serial:0001".to_owned(),
    ];
    let device = keygen(&master, &attributes, &mut rng).unwrap();
    let image: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
    let policy = default_policy(model_id, version);
    let target = ReleaseTarget {
        chain_id: 31337,
        registry: "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            .parse()
            .unwrap(),
        model_id,
        version,
    };
    let mut bytes = Vec::new();
    let sealed = seal(
        &params,
        &BundleSpec {
            target,
            policy: &policy,
            options: SealOptions { segment_size: 64 },
        },
        &image[..],
        image.len() as u64,
        &mut bytes,
        &mut rng,
    )
    .unwrap();
    let h = &sealed.header;
    let header_len = h.as_bytes().len();
    let stream = &bytes[header_len + 32..];
    let segments = stream.chunks(64 + 16).map(hex::encode).collect();
    BundleVector {
        description:
            "otaledger-bundle v1: 300-byte image, 64-byte segments (4 full, last 44 bytes), \
                      default policy; regenerate with OTALEDGER_WRITE_VECTORS=1"
                .into(),
        seed: hex::encode(SEED),
        chain_id: target.chain_id,
        registry: target.registry,
        model_id,
        version,
        segment_size: 64,
        policy: h.policy_text().into(),
        policy_id: h.policy_id(),
        params: hex::encode(params.to_bytes()),
        device_attributes: attributes,
        device_key: hex::encode(device.to_bytes()),
        image: hex::encode(&image),
        image_sha256: sealed.image_sha256,
        nonce_prefix: hex::encode(h.nonce_prefix()),
        header: hex::encode(h.as_bytes()),
        header_sha256: h.hash(),
        cpabe_context_len: h.context().len(),
        key_commitment: hex::encode(&bytes[header_len..header_len + 32]),
        segments,
        bundle_sha256: sealed.bundle_sha256,
        bundle_size: sealed.bundle_len,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn write_or_read<T: Serialize + for<'de> Deserialize<'de>>(
    name: &str,
    fresh: impl FnOnce() -> T,
) -> T {
    let path = testdata(name);
    if writing() {
        let value = fresh();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap() + "\n").unwrap();
        return value;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write it with OTALEDGER_WRITE_VECTORS=1)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

#[test]
fn bundle_vector_decodes_opens_and_regenerates() {
    let v: BundleVector = write_or_read("bundle-v1.json", generate_bundle);

    // The header decodes to the documented fields.
    let header_bytes = unhex(&v.header);
    let header = Header::decode(&header_bytes).unwrap();
    let t = header.target();
    assert_eq!(
        (t.chain_id, t.registry, t.model_id, t.version),
        (v.chain_id, v.registry, v.model_id, v.version)
    );
    assert_eq!(header.segment_size(), v.segment_size);
    assert_eq!(hex::encode(header.nonce_prefix()), v.nonce_prefix);
    assert_eq!(header.policy_text(), v.policy);
    assert_eq!(header.policy_id(), v.policy_id);
    assert_eq!(header.hash(), v.header_sha256);
    assert_eq!(header.context().len(), v.cpabe_context_len);
    assert_eq!(
        header.hash().0,
        <[u8; 32]>::from(Sha256::digest(&header_bytes))
    );
    assert_eq!(header.segment_count(), v.segments.len() as u64);

    // The bundle is header ‖ commitment ‖ segments, and opens with the device key.
    let bundle = [
        header_bytes.clone(),
        unhex(&v.key_commitment),
        v.segments.iter().flat_map(|s| unhex(s)).collect(),
    ]
    .concat();
    assert_eq!(bundle.len() as u64, v.bundle_size);
    assert_eq!(
        B256::from(<[u8; 32]>::from(Sha256::digest(&bundle))),
        v.bundle_sha256
    );
    let device = SecretKey::from_bytes(&unhex(&v.device_key)).unwrap();
    assert_eq!(device.attributes(), v.device_attributes.as_slice());
    PublicKey::from_bytes(&unhex(&v.params)).unwrap();
    let mut image = Vec::new();
    let (_, opened) = open(&bundle[..], &device, &mut image).unwrap();
    assert_eq!(hex::encode(&image), v.image);
    assert_eq!(opened.image_sha256, v.image_sha256);

    // The same seed gives the same bytes: the format has not changed.
    assert_eq!(
        generate_bundle(),
        v,
        "the bundle format changed; see the module docs"
    );
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyDeliveryVector {
    description: String,
    chain_id: u64,
    registry: Address,
    release_id: B256,
    /// The device's secp256k1 identity secret key.
    identity_secret: B256,
    /// Its uncompressed SEC1 public key.
    identity_public: String,
    device: Address,
    key_service: Address,
    /// The plaintext: an `otaledger-cpabe` secret key.
    cpabe_key: String,
    /// keccak256 of the delivery without its signature: what the key service signs.
    signed_digest: B256,
    delivery: String,
}

fn generate_key_delivery() -> KeyDeliveryVector {
    let bundle: BundleVector =
        serde_json::from_str(&std::fs::read_to_string(testdata("bundle-v1.json")).unwrap())
            .unwrap();
    let identity = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();
    let key_service = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x24)).unwrap();
    let cpabe_key = SecretKey::from_bytes(&unhex(&bundle.device_key)).unwrap();
    let release_id = keccak256(b"release 7/42");
    let delivery = KeyDelivery::seal(
        bundle.chain_id,
        bundle.registry,
        release_id,
        &identity_public_key(&identity),
        &cpabe_key,
        &key_service,
    )
    .unwrap();
    let bytes = delivery.to_bytes().unwrap();
    KeyDeliveryVector {
        description: "otaledger-key v1: the bundle vector's device key delivered to identity key 0x42…42, \
                      signed by key service 0x24…24 (ECIES is randomised: regenerating changes the bytes)"
            .into(),
        chain_id: bundle.chain_id,
        registry: bundle.registry,
        release_id,
        identity_secret: B256::repeat_byte(0x42),
        identity_public: hex::encode(identity_public_key(&identity)),
        device: identity.address(),
        key_service: key_service.address(),
        cpabe_key: bundle.device_key,
        signed_digest: keccak256(&bytes[..bytes.len() - 64]),
        delivery: hex::encode(bytes),
    }
}

#[test]
fn key_delivery_vector_verifies_and_opens() {
    // The bundle vector must exist first when writing.
    if writing() {
        let _ = write_or_read("bundle-v1.json", generate_bundle);
    }
    let v: KeyDeliveryVector = write_or_read("key-delivery-v1.json", generate_key_delivery);
    let bytes = unhex(&v.delivery);
    let delivery = KeyDelivery::decode(&bytes).unwrap();
    assert_eq!(delivery.to_bytes().unwrap(), bytes, "one encoding");
    assert_eq!(
        (
            delivery.chain_id,
            delivery.registry,
            delivery.release_id,
            delivery.device
        ),
        (v.chain_id, v.registry, v.release_id, v.device)
    );
    assert_eq!(keccak256(&bytes[..bytes.len() - 64]), v.signed_digest);
    assert_eq!(delivery.signer().unwrap(), v.key_service);
    let identity = PrivateKeySigner::from_bytes(&v.identity_secret).unwrap();
    assert_eq!(
        hex::encode(identity_public_key(&identity)),
        v.identity_public
    );
    let key = delivery
        .open(
            &Recipient {
                chain_id: v.chain_id,
                registry: v.registry,
                key_service: v.key_service,
            },
            &v.identity_secret.0,
        )
        .unwrap();
    assert_eq!(hex::encode(key.to_bytes()), v.cpabe_key);
}
