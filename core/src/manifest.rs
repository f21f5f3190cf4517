//! The release manifest: building it from a sealed bundle, its canonical
//! `manifest.json` file, and the one-signer signature files that
//! `release sign` writes and `release publish` assembles into an approval.
//!
//! The manifest is the registry's `IUpdateRegistry.Manifest`, signed with
//! EIP-712 under the registry's domain (name `OTA Ledger UpdateRegistry`,
//! version `1`, chain id, registry address). Its type string is
//!
//! ```text
//! Manifest(uint32 modelId,uint64 version,bytes32 bundleSha256,uint64 bundleSize,bytes bundleCid,bytes32 imageSha256,uint128 price,address paymentToken,bytes32 policyId,uint64 expiry,bytes32 metadataHash)
//! ```
//!
//! and its release id is the struct hash (`hashStruct(manifest)`); the signed
//! digest is `keccak256(0x1901 ‖ domainSeparator ‖ releaseId)`.
//!
//! `manifest.json` (format `otaledger-manifest/1`): byte fields as `0x` hex,
//! integers as JSON numbers except `price` (a `uint128`, as a decimal string),
//! keys in the order below, two-space indentation, a final newline. The file
//! also carries the chain id and registry (the signing domain), the policy
//! text, and the derived release id and digest, which a reader recomputes and
//! compares, so a signer sees exactly what is signed:
//!
//! ```json
//! {
//!   "format": "otaledger-manifest/1",
//!   "chainId": 31337,
//!   "registry": "0x…",
//!   "policy": "\"model:3\" and \"release:3/7\"",
//!   "releaseId": "0x…",
//!   "digest": "0x…",
//!   "manifest": { "modelId": 3, "version": 7, "bundleSha256": "0x…", "bundleSize": 1048,
//!                 "bundleCid": "0x0155…", "imageSha256": "0x…", "price": "1000",
//!                 "paymentToken": "0x…", "policyId": "0x…", "expiry": 0, "metadataHash": "0x…" }
//! }
//! ```

use std::path::Path;

use alloy::{
    primitives::{Address, B256, Bytes},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    bindings::registry::IUpdateRegistry::{Approval, Manifest},
    bundle::{Sealed, policy_id},
    fsutil::write_atomic,
    signing::{SignerSet, recover_compact, registry_domain, release_id, sign_compact},
};

/// The `format` tag of `manifest.json`.
pub const MANIFEST_FORMAT: &str = "otaledger-manifest/1";
/// The `format` tag of a signature file.
pub const SIGNATURE_FORMAT: &str = "otaledger-signature/1";

/// Builds the manifest of a sealed bundle once its CID is known.
#[derive(Debug, Clone)]
pub struct ManifestBuilder {
    manifest: Manifest,
}

impl ManifestBuilder {
    /// A free release for `sealed` stored under `bundle_cid` (the CID's binary
    /// form). Set [`ManifestBuilder::expiry`]: the registry and the market
    /// refuse a manifest whose expiry is not in the future.
    pub fn new(sealed: &Sealed, bundle_cid: Vec<u8>) -> Self {
        let target = sealed.header.target();
        Self {
            manifest: Manifest {
                modelId: target.model_id,
                version: target.version,
                bundleSha256: sealed.bundle_sha256,
                bundleSize: sealed.bundle_len,
                bundleCid: Bytes::from(bundle_cid),
                imageSha256: sealed.image_sha256,
                price: 0,
                paymentToken: Address::ZERO,
                policyId: policy_id(sealed.header.policy()),
                expiry: 0,
                metadataHash: B256::ZERO,
            },
        }
    }

    /// The price per device, in wei or the token's smallest unit.
    pub fn price(mut self, price: u128) -> Self {
        self.manifest.price = price;
        self
    }

    /// The ERC-20 to pay in (zero address: ETH).
    pub fn payment_token(mut self, token: Address) -> Self {
        self.manifest.paymentToken = token;
        self
    }

    /// Unix time from which the release can no longer be published or bought.
    pub fn expiry(mut self, expiry: u64) -> Self {
        self.manifest.expiry = expiry;
        self
    }

    /// SHA-256 of the release metadata document (notes, SBOM, provenance), or zero.
    pub fn metadata_hash(mut self, hash: B256) -> Self {
        self.manifest.metadataHash = hash;
        self
    }

    /// The manifest.
    pub fn build(self) -> Manifest {
        self.manifest
    }
}

/// The manifest fields as `manifest.json` spells them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ManifestFields {
    model_id: u32,
    version: u64,
    bundle_sha256: B256,
    bundle_size: u64,
    bundle_cid: Bytes,
    image_sha256: B256,
    #[serde(with = "decimal_u128")]
    price: u128,
    payment_token: Address,
    policy_id: B256,
    expiry: u64,
    metadata_hash: B256,
}

impl From<&Manifest> for ManifestFields {
    fn from(m: &Manifest) -> Self {
        Self {
            model_id: m.modelId,
            version: m.version,
            bundle_sha256: m.bundleSha256,
            bundle_size: m.bundleSize,
            bundle_cid: m.bundleCid.clone(),
            image_sha256: m.imageSha256,
            price: m.price,
            payment_token: m.paymentToken,
            policy_id: m.policyId,
            expiry: m.expiry,
            metadata_hash: m.metadataHash,
        }
    }
}

impl From<ManifestFields> for Manifest {
    fn from(m: ManifestFields) -> Self {
        Self {
            modelId: m.model_id,
            version: m.version,
            bundleSha256: m.bundle_sha256,
            bundleSize: m.bundle_size,
            bundleCid: m.bundle_cid,
            imageSha256: m.image_sha256,
            price: m.price,
            paymentToken: m.payment_token,
            policyId: m.policy_id,
            expiry: m.expiry,
            metadataHash: m.metadata_hash,
        }
    }
}

/// `uint128` as a decimal string (JSON numbers lose precision above 2^53 in many readers).
mod decimal_u128 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(D::Error::custom(format!(
                "price {text:?} is not a decimal integer"
            )));
        }
        text.parse()
            .map_err(|_| D::Error::custom(format!("price {text} does not fit in a uint128")))
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ManifestJson {
    format: String,
    chain_id: u64,
    registry: Address,
    policy: String,
    release_id: B256,
    digest: B256,
    manifest: ManifestFields,
}

/// A manifest with its signing domain and policy: the content of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// EIP-155 chain id of the signing domain.
    pub chain_id: u64,
    /// The registry (the domain's verifying contract).
    pub registry: Address,
    /// The release policy's canonical text (its hash is `manifest.policyId`).
    pub policy: String,
    /// The manifest.
    pub manifest: Manifest,
}

impl ManifestFile {
    /// The manifest of a sealed bundle, with the bundle's chain, registry and policy.
    pub fn new(sealed: &Sealed, manifest: Manifest) -> Self {
        let target = sealed.header.target();
        Self {
            chain_id: target.chain_id,
            registry: target.registry,
            policy: sealed.header.policy_text().to_owned(),
            manifest,
        }
    }

    /// The release id (EIP-712 struct hash).
    pub fn release_id(&self) -> B256 {
        release_id(&self.manifest)
    }

    /// The EIP-712 digest the signers sign.
    pub fn digest(&self) -> B256 {
        self.manifest
            .eip712_signing_hash(&registry_domain(self.chain_id, self.registry))
    }

    /// The canonical JSON text.
    pub fn to_json(&self) -> String {
        let json = ManifestJson {
            format: MANIFEST_FORMAT.into(),
            chain_id: self.chain_id,
            registry: self.registry,
            policy: self.policy.clone(),
            release_id: self.release_id(),
            digest: self.digest(),
            manifest: (&self.manifest).into(),
        };
        pretty_json(&json)
    }

    /// Parses and checks `manifest.json` text (`path` names it in errors): the
    /// format tag, every field, the derived release id and digest, and that the
    /// policy text hashes to `policyId`.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let json: ManifestJson = parse_json(text, path)?;
        check_format(&json.format, MANIFEST_FORMAT, path)?;
        let file = Self {
            chain_id: json.chain_id,
            registry: json.registry,
            policy: json.policy,
            manifest: json.manifest.into(),
        };
        let mismatch = |field: &'static str, found: String, expected: String| {
            Err(Error::DerivedFieldMismatch {
                path: path.to_owned(),
                field,
                found,
                expected,
            })
        };
        let policy = crate::bundle::parse_policy(&file.policy)?;
        if policy_id(&policy) != file.manifest.policyId {
            return mismatch(
                "manifest.policyId",
                file.manifest.policyId.to_string(),
                format!("{} (the hash of the policy text)", policy_id(&policy)),
            );
        }
        if json.release_id != file.release_id() {
            return mismatch(
                "releaseId",
                json.release_id.to_string(),
                file.release_id().to_string(),
            );
        }
        if json.digest != file.digest() {
            return mismatch("digest", json.digest.to_string(), file.digest().to_string());
        }
        Ok(file)
    }

    /// Checks that the bundle file `bundle` is the one this manifest names and
    /// was sealed for it: its size and SHA-256 are `bundleSize` and
    /// `bundleSha256`; its header's chain, registry, model and version are the
    /// manifest's; its policy is `policy` and hashes to `policyId`. What a signer
    /// runs before signing (`release sign --bundle`): the manifest alone does not
    /// show which policy the bundle was really sealed under, and a weaker one
    /// would let unpaid devices decrypt it
    /// (`review_formats::manifest_check_bundle_refuses_a_bundle_that_disagrees`).
    /// A mismatch is [`Error::ManifestBundleMismatch`] naming the bundle and the field.
    pub fn check_bundle(&self, bundle: &Path) -> Result<()> {
        use sha2::{Digest, Sha256};
        let io = |source| Error::Io {
            path: bundle.to_owned(),
            source,
        };
        let mismatch = |field: &'static str, in_manifest: String, in_bundle: String| {
            Err(Error::ManifestBundleMismatch {
                bundle: bundle.to_owned(),
                field,
                in_manifest,
                in_bundle,
            })
        };
        let mut file = std::fs::File::open(bundle).map_err(io)?;
        let mut hash = Sha256::new();
        let len = std::io::copy(&mut file, &mut hash).map_err(io)?;
        let sha = B256::from(<[u8; 32]>::from(hash.finalize()));
        let m = &self.manifest;
        if len != m.bundleSize {
            return mismatch(
                "manifest.bundleSize",
                m.bundleSize.to_string(),
                len.to_string(),
            );
        }
        if sha != m.bundleSha256 {
            return mismatch(
                "manifest.bundleSha256",
                m.bundleSha256.to_string(),
                sha.to_string(),
            );
        }
        let file = std::fs::File::open(bundle).map_err(io)?;
        let (header, _) = crate::bundle::read_header(&mut std::io::BufReader::new(file))?;
        let t = header.target();
        let checks = [
            ("chainId", self.chain_id.to_string(), t.chain_id.to_string()),
            (
                "registry",
                self.registry.to_string(),
                t.registry.to_string(),
            ),
            (
                "manifest.modelId",
                m.modelId.to_string(),
                t.model_id.to_string(),
            ),
            (
                "manifest.version",
                m.version.to_string(),
                t.version.to_string(),
            ),
            (
                "policy",
                self.policy.clone(),
                header.policy_text().to_owned(),
            ),
            (
                "manifest.policyId",
                m.policyId.to_string(),
                header.policy_id().to_string(),
            ),
        ];
        for (field, found, expected) in checks {
            if found != expected {
                return mismatch(field, found, expected);
            }
        }
        Ok(())
    }

    /// Reads and checks a `manifest.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Writes the canonical JSON to `path`, all or nothing.
    pub fn store(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// One signer's signature of this manifest (offline: needs only the file and the key).
    pub fn sign(&self, key: &PrivateKeySigner) -> Result<SignatureFile> {
        Ok(SignatureFile {
            signer: key.address(),
            release_id: self.release_id(),
            digest: self.digest(),
            signature: sign_compact(key, self.digest())?,
        })
    }

    /// The registry's `Approval` from signature files of members of `set`:
    /// each must sign this manifest's digest and recover to the signer it names;
    /// they are ordered by signer address as the registry requires.
    pub fn approval(&self, set: &SignerSet, signatures: &[SignatureFile]) -> Result<Approval> {
        let digest = self.digest();
        let mut signed: Vec<&SignatureFile> = signatures.iter().collect();
        signed.sort_unstable_by_key(|s| s.signer);
        signed.dedup_by_key(|s| s.signer);
        let mut bytes = Vec::with_capacity(64 * signed.len());
        for s in &signed {
            if s.digest != digest {
                return Err(Error::DerivedFieldMismatch {
                    path: format!("signature of {}", s.signer).into(),
                    field: "digest",
                    found: s.digest.to_string(),
                    expected: digest.to_string(),
                });
            }
            if !set.signers().contains(&s.signer) {
                return Err(Error::NotASigner { address: s.signer });
            }
            bytes.extend_from_slice(&s.signature);
        }
        if signed.len() < usize::from(set.threshold()) {
            return Err(Error::NotEnoughSigners {
                given: signed.len(),
                threshold: set.threshold(),
            });
        }
        Ok(Approval {
            signers: set.signers().to_vec(),
            threshold: set.threshold(),
            signatures: Bytes::from(bytes),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignatureJson {
    format: String,
    signer: Address,
    release_id: B256,
    digest: B256,
    signature: Bytes,
}

/// One signer's EIP-2098 signature of a manifest digest (`release sign` output,
/// format `otaledger-signature/1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFile {
    /// The signer's address.
    pub signer: Address,
    /// The release id signed for (for people reading the file).
    pub release_id: B256,
    /// The EIP-712 digest signed.
    pub digest: B256,
    /// The 64-byte compact signature.
    pub signature: [u8; 64],
}

impl SignatureFile {
    /// The canonical JSON text.
    pub fn to_json(&self) -> String {
        let json = SignatureJson {
            format: SIGNATURE_FORMAT.into(),
            signer: self.signer,
            release_id: self.release_id,
            digest: self.digest,
            signature: Bytes::copy_from_slice(&self.signature),
        };
        pretty_json(&json)
    }

    /// Parses a signature file and checks that the signature recovers to its
    /// signer; a high-s signature is refused ([`Error::MalleableSignature`]).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let json: SignatureJson = parse_json(text, path)?;
        check_format(&json.format, SIGNATURE_FORMAT, path)?;
        let signature: [u8; 64] =
            json.signature
                .as_ref()
                .try_into()
                .map_err(|_| Error::FieldOutOfRange {
                    format: "signature file",
                    field: "signature length",
                    value: json.signature.len() as u64,
                    min: 64,
                    max: 64,
                })?;
        let recovered = recover_compact(&signature, &json.digest)?;
        if recovered != json.signer {
            return Err(Error::SignatureSigner {
                path: path.to_owned(),
                signer: json.signer,
                recovered,
            });
        }
        Ok(Self {
            signer: json.signer,
            release_id: json.release_id,
            digest: json.digest,
            signature,
        })
    }

    /// Reads and checks a signature file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Writes the file, all or nothing.
    pub fn store(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }
}

/// The pretty JSON text of a file form, with a final newline. The file forms
/// are structs of strings, numbers and hex, which serialize infallibly.
fn pretty_json(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Parses the JSON text of a file form (`path` names it in errors).
fn parse_json<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    serde_json::from_str(text).map_err(|source| Error::ManifestFile {
        path: path.to_owned(),
        source,
    })
}

/// Refuses a file form whose format tag is not `expected`.
fn check_format(found: &str, expected: &'static str, path: &Path) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::FormatTag {
            path: path.to_owned(),
            found: found.to_owned(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ManifestFile {
        let policy = crate::bundle::default_policy(3, 7);
        ManifestFile {
            chain_id: 31337,
            registry: Address::repeat_byte(0x11),
            policy: policy.to_string(),
            manifest: Manifest {
                modelId: 3,
                version: 7,
                bundleSha256: B256::repeat_byte(1),
                bundleSize: 1048,
                bundleCid: Bytes::from_static(b"\x01\x55\x12\x20abc"),
                imageSha256: B256::repeat_byte(2),
                price: u128::MAX,
                paymentToken: Address::ZERO,
                policyId: policy_id(&policy),
                expiry: 0,
                metadataHash: B256::ZERO,
            },
        }
    }

    fn key(i: u8) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).unwrap()
    }

    #[test]
    fn json_round_trips_canonically() {
        let f = file();
        let text = f.to_json();
        assert!(text.contains(r#""price": "340282366920938463463374607431768211455""#));
        assert!(text.contains(r#""bundleCid": "0x01551220616263""#));
        let back = ManifestFile::from_json(&text, Path::new("m.json")).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.to_json(), text);
    }

    #[test]
    fn malformed_files_name_the_problem() {
        let p = Path::new("m.json");
        let text = file().to_json();
        let err = ManifestFile::from_json(&text.replace(r#""version": 7,"#, ""), p).unwrap_err();
        assert!(err.to_string().contains("missing field `version`"), "{err}");
        let err =
            ManifestFile::from_json(&text.replace(r#""expiry": 0"#, r#""expiry": 0, "x": 1"#), p)
                .unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
        let err = ManifestFile::from_json(
            &text.replace(r#""340282366920938463463374607431768211455""#, "5"),
            p,
        )
        .unwrap_err();
        assert!(matches!(err, Error::ManifestFile { .. }), "{err}");
        let err = ManifestFile::from_json(&text.replace(r#""version": 7"#, r#""version": 8"#), p)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::DerivedFieldMismatch {
                    field: "releaseId",
                    ..
                }
            ),
            "{err}"
        );
        let err =
            ManifestFile::from_json(&text.replace("release:3/7", "release:3/8"), p).unwrap_err();
        assert!(
            matches!(
                err,
                Error::DerivedFieldMismatch {
                    field: "manifest.policyId",
                    ..
                }
            ),
            "{err}"
        );
        let err = ManifestFile::from_json(
            &text.replace("otaledger-manifest/1", "otaledger-manifest/2"),
            p,
        )
        .unwrap_err();
        assert!(matches!(err, Error::FormatTag { .. }), "{err}");
        assert!(ManifestFile::from_json("{", p).is_err());
    }

    #[test]
    fn approvals_take_signature_files_in_any_order_and_refuse_strangers() {
        let f = file();
        let keys: Vec<_> = (1..=4).map(key).collect();
        let set = SignerSet::new(keys[..3].iter().map(|k| k.address()).collect(), 2).unwrap();
        let sigs: Vec<SignatureFile> = [&keys[2], &keys[0]]
            .iter()
            .map(|k| {
                let s = f.sign(k).unwrap();
                SignatureFile::from_json(&s.to_json(), Path::new("s.json")).unwrap()
            })
            .collect();
        let approval = f.approval(&set, &sigs).unwrap();
        let expected = set.approve(f.digest(), &[&keys[0], &keys[2]]).unwrap();
        assert_eq!(approval.signatures, expected.signatures);

        let stranger = f.sign(&keys[3]).unwrap();
        assert!(matches!(
            f.approval(&set, &[sigs[0].clone(), stranger]),
            Err(Error::NotASigner { .. })
        ));
        assert!(matches!(
            f.approval(&set, &sigs[..1]),
            Err(Error::NotEnoughSigners {
                given: 1,
                threshold: 2
            })
        ));
        let mut other = file();
        other.manifest.version = 8;
        let wrong = other.sign(&keys[1]).unwrap();
        assert!(matches!(
            f.approval(&set, &[sigs[0].clone(), wrong]),
            Err(Error::DerivedFieldMismatch {
                field: "digest",
                ..
            })
        ));
        // A file that names another signer than the one who signed.
        let mut forged = sigs[0].clone();
        forged.signer = keys[1].address();
        let err = SignatureFile::from_json(&forged.to_json(), Path::new("s.json")).unwrap_err();
        assert!(matches!(err, Error::SignatureSigner { .. }), "{err}");
    }
}
