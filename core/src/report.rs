//! Install reports, format `otaledger-report/1`: what a device says happened
//! to a release (installed, refused and why, failed, rolled back), signed with
//! its secp256k1 identity key so that nobody else can speak for it.
//!
//! The signature is EIP-712 over [`InstallReport`] in the domain
//! `{name: "OTA Ledger InstallReport", version: "1", chainId, verifyingContract: registry}`,
//! so a report for one chain or deployment is never valid on another, and can
//! never be mistaken for a registry approval or a claim (other domain name).
//! Type string:
//!
//! ```text
//! InstallReport(uint64 deviceIndex,bytes32 releaseId,uint64 version,uint8 outcome,string detail,uint64 blockNumber,uint64 timestamp,uint64 nonce)
//! ```
//!
//! `nonce` increases strictly per device (the device keeps it in its state
//! file): a receiver accepts a report only with a nonce above the last one it
//! stored for that device, so a captured report cannot be replayed.
//! `blockNumber` is the trusted head the device verified against; `timestamp`
//! its clock (unix seconds). `detail` is the refusal or failure class
//! (`[a-z0-9-]`, at most [`MAX_DETAIL_LEN`] bytes; empty for `installed`).
//!
//! The wire form is a small JSON document ([`SignedReport::to_json`]),
//! at most [`MAX_REPORT_JSON`] bytes, e.g.
//!
//! ```json
//! {
//!   "format": "otaledger-report/1",
//!   "chainId": 31337,
//!   "registry": "0x…",
//!   "report": {
//!     "deviceIndex": 12, "releaseId": "0x…", "version": 2,
//!     "outcome": "refused", "detail": "image-hash",
//!     "blockNumber": 120, "timestamp": 1764950400, "nonce": 7
//!   },
//!   "signature": "0x… (65 bytes: r ‖ s ‖ v)"
//! }
//! ```

use std::{fmt, str::FromStr};

use alloy::{
    primitives::{Address, B256, Signature},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The format tag of the JSON wire form.
pub const REPORT_FORMAT: &str = "otaledger-report/1";
/// Longest `detail` accepted, in bytes.
pub const MAX_DETAIL_LEN: usize = 64;
/// Longest JSON wire form accepted, in bytes (a receiver reads no more).
pub const MAX_REPORT_JSON: usize = 4096;

alloy::sol! {
    /// What a device reports about one release, signed with its identity key.
    #[derive(Debug, PartialEq, Eq)]
    struct InstallReport {
        /// The device's global index in the registry.
        uint64 deviceIndex;
        /// The release (manifest struct hash).
        bytes32 releaseId;
        /// The release's version.
        uint64 version;
        /// [`Outcome`] as a number.
        uint8 outcome;
        /// Refusal or failure class; empty when installed.
        string detail;
        /// The trusted head the device checked against.
        uint64 blockNumber;
        /// The device's clock, unix seconds.
        uint64 timestamp;
        /// Strictly increasing per device.
        uint64 nonce;
    }
}

/// What happened to a release on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Verified, written, booted and confirmed.
    Installed,
    /// A check refused the update (`detail` names the class).
    Refused,
    /// Something failed that is not a verdict on the release (I/O, network).
    Failed,
    /// Installed but the new image did not confirm; the old one runs again.
    RolledBack,
}

impl Outcome {
    /// Every outcome, in code order.
    pub const ALL: [Outcome; 4] = [
        Outcome::Installed,
        Outcome::Refused,
        Outcome::Failed,
        Outcome::RolledBack,
    ];

    /// The number signed in the report.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Installed => 0,
            Outcome::Refused => 1,
            Outcome::Failed => 2,
            Outcome::RolledBack => 3,
        }
    }

    /// The outcome of a signed number.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The name in the JSON form (`installed`, `refused`, `failed`, `rolled-back`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Installed => "installed",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled-back",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| invalid("outcome", format!("unknown outcome {s:?}")))
    }
}

/// A report before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// EIP-155 chain id of the deployment.
    pub chain_id: u64,
    /// The registry (the domain's verifying contract).
    pub registry: Address,
    /// The device's global index.
    pub device_index: u64,
    /// The release id.
    pub release_id: B256,
    /// The release's version.
    pub version: u64,
    /// What happened.
    pub outcome: Outcome,
    /// Refusal or failure class (`[a-z0-9-]`, ≤ [`MAX_DETAIL_LEN`]); empty when installed.
    pub detail: String,
    /// The trusted head's number.
    pub block_number: u64,
    /// The device's clock, unix seconds.
    pub timestamp: u64,
    /// Strictly increasing per device.
    pub nonce: u64,
}

/// The EIP-712 domain of install reports on `chain_id` for `registry`.
pub fn report_domain(chain_id: u64, registry: Address) -> Eip712Domain {
    eip712_domain! {
        name: "OTA Ledger InstallReport",
        version: "1",
        chain_id: chain_id,
        verifying_contract: registry,
    }
}

impl Report {
    /// Checks the fields a receiver checks before anything else: `detail`'s
    /// alphabet and length, and that it is empty exactly when installed.
    pub fn check(&self) -> Result<()> {
        if self.detail.len() > MAX_DETAIL_LEN {
            return Err(invalid(
                "detail",
                format!("{} bytes, at most {MAX_DETAIL_LEN}", self.detail.len()),
            ));
        }
        if !self
            .detail
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "detail",
                "only a-z, 0-9 and '-' are allowed".into(),
            ));
        }
        match (self.outcome, self.detail.is_empty()) {
            (Outcome::Installed, false) => Err(invalid(
                "detail",
                "must be empty when the outcome is installed".into(),
            )),
            (Outcome::Refused | Outcome::Failed | Outcome::RolledBack, true) => Err(invalid(
                "detail",
                format!("must name the class when the outcome is {}", self.outcome),
            )),
            _ => Ok(()),
        }
    }

    /// The EIP-712 struct.
    pub fn typed(&self) -> InstallReport {
        InstallReport {
            deviceIndex: self.device_index,
            releaseId: self.release_id,
            version: self.version,
            outcome: self.outcome.code(),
            detail: self.detail.clone(),
            blockNumber: self.block_number,
            timestamp: self.timestamp,
            nonce: self.nonce,
        }
    }

    /// The digest the device signs.
    pub fn digest(&self) -> B256 {
        self.typed()
            .eip712_signing_hash(&report_domain(self.chain_id, self.registry))
    }

    /// Signs with the device's identity key (after [`Report::check`]).
    pub fn sign(self, identity: &PrivateKeySigner) -> Result<SignedReport> {
        self.check()?;
        let signature = identity
            .sign_hash_sync(&self.digest())
            .map_err(|e| Error::Signing {
                signer: identity.address(),
                reason: e.to_string(),
            })?;
        Ok(SignedReport {
            report: self,
            signature,
        })
    }
}

/// A report with the device's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReport {
    /// The report.
    pub report: Report,
    /// 65-byte ECDSA signature over [`Report::digest`].
    pub signature: Signature,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReportJson {
    format: String,
    chain_id: u64,
    registry: Address,
    report: BodyJson,
    signature: alloy::primitives::Bytes,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BodyJson {
    device_index: u64,
    release_id: B256,
    version: u64,
    outcome: String,
    detail: String,
    block_number: u64,
    timestamp: u64,
    nonce: u64,
}

impl SignedReport {
    /// The address that signed it (the receiver compares it with the device's identity address).
    /// Checks the fields first; a malformed signature is an error.
    pub fn signer(&self) -> Result<Address> {
        self.report.check()?;
        check_low_s(&self.signature)?;
        self.signature
            .recover_address_from_prehash(&self.report.digest())
            .map_err(|e| invalid("signature", format!("does not recover: {e}")))
    }

    /// The JSON wire form.
    pub fn to_json(&self) -> String {
        let r = &self.report;
        let json = ReportJson {
            format: REPORT_FORMAT.into(),
            chain_id: r.chain_id,
            registry: r.registry,
            report: BodyJson {
                device_index: r.device_index,
                release_id: r.release_id,
                version: r.version,
                outcome: r.outcome.as_str().into(),
                detail: r.detail.clone(),
                block_number: r.block_number,
                timestamp: r.timestamp,
                nonce: r.nonce,
            },
            signature: self.signature.as_bytes().to_vec().into(),
        };
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Parses the JSON wire form: at most [`MAX_REPORT_JSON`] bytes, the format
    /// tag, every field, a 65-byte signature. Does not verify the signature
    /// (see [`SignedReport::signer`]).
    pub fn from_json(text: &[u8]) -> Result<Self> {
        if text.len() > MAX_REPORT_JSON {
            return Err(invalid(
                "body",
                format!("{} bytes, at most {MAX_REPORT_JSON}", text.len()),
            ));
        }
        let json: ReportJson = serde_json::from_slice(text)
            .map_err(|e| invalid("body", format!("not a report: {e}")))?;
        if json.format != REPORT_FORMAT {
            return Err(invalid(
                "format",
                format!("{:?} is not {REPORT_FORMAT:?}", json.format),
            ));
        }
        let signature = Signature::try_from(json.signature.as_ref()).map_err(|_| {
            invalid(
                "signature",
                format!("{} bytes, expected 65", json.signature.len()),
            )
        })?;
        // One wire form per signature: v must be 27 or 28 as `to_json` writes
        // it (a parity byte 0/1 or any other value read as one would give the
        // same report a second encoding).
        if signature.as_bytes()[..] != json.signature[..] {
            return Err(invalid(
                "signature",
                "v is not 27 or 28 (not the canonical encoding)".to_owned(),
            ));
        }
        let report = Report {
            chain_id: json.chain_id,
            registry: json.registry,
            device_index: json.report.device_index,
            release_id: json.report.release_id,
            version: json.report.version,
            outcome: json.report.outcome.parse()?,
            detail: json.report.detail,
            block_number: json.report.block_number,
            timestamp: json.report.timestamp,
            nonce: json.report.nonce,
        };
        report.check()?;
        check_low_s(&signature)?;
        Ok(Self { report, signature })
    }
}

/// Refuses `s` above secp256k1n/2: the high-s twin of a signature recovers to
/// the same signer, so accepting it would give one report two wire forms
/// (`review_signatures::report_high_s_twin_is_refused`).
fn check_low_s(signature: &Signature) -> Result<()> {
    if signature.normalize_s().is_some() {
        return Err(invalid(
            "signature",
            "s above secp256k1n/2 (malleable twin)".into(),
        ));
    }
    Ok(())
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidReport { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(outcome: Outcome, detail: &str) -> Report {
        Report {
            chain_id: 31337,
            registry: Address::repeat_byte(0x11),
            device_index: 12,
            release_id: B256::repeat_byte(0x22),
            version: 2,
            outcome,
            detail: detail.into(),
            block_number: 120,
            timestamp: 1_764_950_400,
            nonce: 7,
        }
    }

    #[test]
    fn type_string_is_the_documented_one() {
        assert_eq!(
            InstallReport::eip712_encode_type(),
            "InstallReport(uint64 deviceIndex,bytes32 releaseId,uint64 version,uint8 outcome,string detail,uint64 blockNumber,uint64 timestamp,uint64 nonce)"
        );
    }

    #[test]
    fn json_round_trip_recovers_the_device() {
        let key = PrivateKeySigner::random();
        for (outcome, detail) in [
            (Outcome::Installed, ""),
            (Outcome::Refused, "image-hash"),
            (Outcome::Failed, "download"),
            (Outcome::RolledBack, "health-check"),
        ] {
            let signed = sample(outcome, detail).sign(&key).unwrap();
            let back = SignedReport::from_json(signed.to_json().as_bytes()).unwrap();
            assert_eq!(back, signed);
            assert_eq!(back.signer().unwrap(), key.address());
        }
    }

    #[test]
    fn any_changed_field_changes_the_signer() {
        let key = PrivateKeySigner::random();
        let signed = sample(Outcome::Refused, "signature").sign(&key).unwrap();
        let edits: [fn(&mut Report); 9] = [
            |r| r.chain_id += 1,
            |r| r.registry = Address::repeat_byte(0x12),
            |r| r.device_index += 1,
            |r| r.release_id = B256::repeat_byte(0x23),
            |r| r.version += 1,
            |r| r.outcome = Outcome::Failed,
            |r| r.detail = "signatures".into(),
            |r| r.block_number += 1,
            |r| r.nonce += 1,
        ];
        for edit in edits {
            let mut forged = signed.clone();
            edit(&mut forged.report);
            assert_ne!(forged.signer().ok(), Some(key.address()));
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        let key = PrivateKeySigner::random();
        let good = sample(Outcome::Refused, "policy")
            .sign(&key)
            .unwrap()
            .to_json();
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "body"),
            (
                good.replace("otaledger-report/1", "otaledger-report/2"),
                "format",
            ),
            (good.replace("\"refused\"", "\"exploded\""), "outcome"),
            (good.replace("\"policy\"", "\"Policy!\""), "detail"),
            (good.replace("\"policy\"", "\"\""), "detail"),
            (
                good.replace("\"policy\"", &format!("\"{}\"", "a".repeat(65))),
                "detail",
            ),
            (good.replace("\"nonce\"", "\"extra\":1,\"nonce\""), "body"),
            (" ".repeat(MAX_REPORT_JSON + 1), "body"),
        ];
        for (text, field) in cases {
            match SignedReport::from_json(text.as_bytes()) {
                Err(Error::InvalidReport { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        // A short signature.
        let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
        json["signature"] = "0x1234".into();
        match SignedReport::from_json(json.to_string().as_bytes()) {
            Err(Error::InvalidReport { field, .. }) => assert_eq!(field, "signature"),
            other => panic!("{other:?}"),
        }
        // Installed with a detail cannot even be signed.
        assert!(sample(Outcome::Installed, "x").sign(&key).is_err());
    }
}
