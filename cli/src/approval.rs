//! Threshold-signed admin actions: `manufacturer rotate-signers | update`,
//! `model raise-floor` and `release revoke` need signatures of m of the
//! manufacturer's n signers, made offline like `release sign`.
//!
//! 1. The command writes an **approval request** (`otaledger-approval-request/1`,
//!    JSON): the action and its arguments, everything the EIP-712 digest depends
//!    on (chain id, registry, the manufacturer's nonce where the message has one)
//!    and the digest itself.
//! 2. Each signer runs `approval sign --request F` (offline; only the file and
//!    the key are needed) and gets one signature file
//!    (`otaledger-approval-signature/1`). The digest is recomputed from the
//!    request's fields, so a signer never signs a digest the fields do not give.
//! 3. `approval submit --request F --sig A --sig B` orders the signatures by
//!    signer (EIP-2098, as `release publish` does), checks them against the
//!    current signer set, refuses a stale nonce, and sends the transaction.

use std::path::{Path, PathBuf};

use alloy::{
    primitives::{Address, B256, Bytes},
    providers::DynProvider,
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use otaledger_core::{
    bindings::registry::{IUpdateRegistry::Approval, UpdateRegistry},
    fsutil::write_atomic,
    signing::{
        RaiseFloor, RevokeRelease, RotateSigners, SignerSet, UpdateManufacturer, registry_domain,
        sign_compact,
    },
};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    chain::{Chain, Mined, contract_error, mined},
    registry::current_signer_set,
};

/// The `format` tag of an approval request.
pub const REQUEST_FORMAT: &str = "otaledger-approval-request/1";
/// The `format` tag of an approval signature file.
pub const SIGNATURE_FORMAT: &str = "otaledger-approval-signature/1";
/// Longest revocation reason accepted (it is stored in an event).
pub const MAX_REASON_LEN: usize = 1024;

/// Checks a revocation reason: at most [`MAX_REASON_LEN`] bytes, and no control or bidirectional
/// formatting characters (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069), which could make a
/// signer, an auditor's terminal or the dashboard show text other than what is recorded.
pub fn check_reason(field: &'static str, reason: &str) -> Result<()> {
    if reason.len() > MAX_REASON_LEN {
        return Err(input(
            field,
            format!(
                "{} bytes, at most {MAX_REASON_LEN} are accepted",
                reason.len()
            ),
        ));
    }
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if let Some(c) = reason.chars().find(|c| hidden(*c)) {
        return Err(input(
            field,
            format!(
                "contains U+{:04X}, a control or bidirectional formatting character",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// A threshold-approved registry action with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// `rotateSigners`: install a new signer set.
    #[serde(rename_all = "camelCase")]
    RotateSigners {
        /// The new signers, ascending.
        signers: Vec<Address>,
        /// The new threshold.
        threshold: u8,
    },
    /// `updateManufacturer`: a new operator and payee.
    #[serde(rename_all = "camelCase")]
    UpdateManufacturer {
        /// The new operator.
        operator: Address,
        /// The new payee.
        payee: Address,
    },
    /// `raiseFloor`: a model's new minimum version.
    #[serde(rename_all = "camelCase")]
    RaiseFloor {
        /// The model.
        model_id: u32,
        /// The new floor.
        min_version: u64,
    },
    /// `revokeRelease`: revoke a release (buyers inside the refund window get their money back).
    #[serde(rename_all = "camelCase")]
    RevokeRelease {
        /// The release.
        release_id: B256,
        /// Why (emitted in the event).
        reason: String,
    },
}

impl Action {
    /// The command-line name of the action.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RotateSigners { .. } => "rotate-signers",
            Self::UpdateManufacturer { .. } => "update-manufacturer",
            Self::RaiseFloor { .. } => "raise-floor",
            Self::RevokeRelease { .. } => "revoke-release",
        }
    }

    /// Whether the EIP-712 message carries the manufacturer's nonce.
    pub fn has_nonce(&self) -> bool {
        matches!(
            self,
            Self::RotateSigners { .. } | Self::UpdateManufacturer { .. }
        )
    }
}

/// An approval request (`otaledger-approval-request/1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// EIP-155 chain id of the signing domain.
    pub chain_id: u64,
    /// The registry (the domain's verifying contract).
    pub registry: Address,
    /// The manufacturer whose signers approve.
    pub manufacturer_id: u32,
    /// The manufacturer's nonce the message is bound to (rotate-signers, update), else `None`.
    pub nonce: Option<u64>,
    /// The action.
    pub action: Action,
}

/// (No `deny_unknown_fields`: serde does not support it together with `flatten`.)
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestJson {
    format: String,
    chain_id: u64,
    registry: Address,
    manufacturer_id: u32,
    nonce: Option<u64>,
    #[serde(flatten)]
    action: Action,
    primary_type: String,
    digest: B256,
}

fn input(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Input {
        field,
        reason: reason.into(),
    }
}

impl Request {
    /// A request; checks the arguments (signer set, reason length, nonce presence).
    pub fn new(
        chain: &Chain,
        manufacturer_id: u32,
        nonce: Option<u64>,
        action: Action,
    ) -> Result<Self> {
        let r = Self {
            chain_id: chain.chain_id(),
            registry: chain.registry(),
            manufacturer_id,
            nonce,
            action,
        };
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<()> {
        if self.action.has_nonce() != self.nonce.is_some() {
            return Err(input(
                "nonce",
                format!(
                    "the {} message {} a nonce",
                    self.action.name(),
                    if self.action.has_nonce() {
                        "needs"
                    } else {
                        "has no"
                    }
                ),
            ));
        }
        match &self.action {
            Action::RotateSigners { signers, threshold } => {
                let set = SignerSet::new(signers.clone(), *threshold)?;
                if set.signers() != signers.as_slice() {
                    return Err(input("signers", "must be strictly ascending"));
                }
            }
            Action::UpdateManufacturer { operator, payee } => {
                if operator.is_zero() {
                    return Err(input("operator", "must not be the zero address"));
                }
                if payee.is_zero() {
                    return Err(input("payee", "must not be the zero address"));
                }
            }
            Action::RaiseFloor { .. } => {}
            Action::RevokeRelease { reason, .. } => check_reason("reason", reason)?,
        }
        Ok(())
    }

    /// The EIP-712 primary type of the message.
    pub fn primary_type(&self) -> &'static str {
        match self.action {
            Action::RotateSigners { .. } => "RotateSigners",
            Action::UpdateManufacturer { .. } => "UpdateManufacturer",
            Action::RaiseFloor { .. } => "RaiseFloor",
            Action::RevokeRelease { .. } => "RevokeRelease",
        }
    }

    /// The EIP-712 digest the signers sign (computed from the fields, never read).
    pub fn digest(&self) -> B256 {
        let domain = registry_domain(self.chain_id, self.registry);
        let nonce = self.nonce.unwrap_or_default();
        match &self.action {
            Action::RotateSigners { signers, threshold } => RotateSigners {
                manufacturerId: self.manufacturer_id,
                nonce,
                signers: signers.clone(),
                threshold: *threshold,
            }
            .eip712_signing_hash(&domain),
            Action::UpdateManufacturer { operator, payee } => UpdateManufacturer {
                manufacturerId: self.manufacturer_id,
                nonce,
                operator: *operator,
                payee: *payee,
            }
            .eip712_signing_hash(&domain),
            Action::RaiseFloor {
                model_id,
                min_version,
            } => RaiseFloor {
                modelId: *model_id,
                minVersion: *min_version,
            }
            .eip712_signing_hash(&domain),
            Action::RevokeRelease { release_id, reason } => RevokeRelease {
                releaseId: *release_id,
                reason: reason.clone(),
            }
            .eip712_signing_hash(&domain),
        }
    }

    /// The canonical JSON text.
    pub fn to_json(&self) -> String {
        let json = RequestJson {
            format: REQUEST_FORMAT.into(),
            chain_id: self.chain_id,
            registry: self.registry,
            manufacturer_id: self.manufacturer_id,
            nonce: self.nonce,
            action: self.action.clone(),
            primary_type: self.primary_type().into(),
            digest: self.digest(),
        };
        let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses a request: format tag, arguments, and the digest recomputed from the fields.
    pub fn from_json(text: &str) -> Result<Self> {
        let json: RequestJson = serde_json::from_str(text)
            .map_err(|e| input("--request", format!("not an approval request: {e}")))?;
        if json.format != REQUEST_FORMAT {
            return Err(input(
                "format",
                format!("{:?}, expected {REQUEST_FORMAT:?}", json.format),
            ));
        }
        let r = Self {
            chain_id: json.chain_id,
            registry: json.registry,
            manufacturer_id: json.manufacturer_id,
            nonce: json.nonce,
            action: json.action,
        };
        // `flatten` rules out serde's deny_unknown_fields, and a key the parser
        // ignores (unknown, another action's, a look-alike of a real one) would
        // show a signer reading the file a value that is not signed: every key
        // must be one this action's request has (review of issue 13,
        // `request_with_unknown_look_alike_or_duplicate_keys_is_refused`).
        let given: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| input("--request", format!("not an approval request: {e}")))?;
        let expected: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&r.to_json()).unwrap_or_default();
        let unknown: Vec<&str> = given
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(input(
                "--request",
                format!(
                    "unknown keys {unknown:?} in a {} request (its keys: {:?})",
                    r.action.name(),
                    expected.keys().collect::<Vec<_>>()
                ),
            ));
        }
        r.check()?;
        if json.primary_type != r.primary_type() {
            return Err(input(
                "primaryType",
                format!(
                    "{:?} does not match the action ({})",
                    json.primary_type,
                    r.primary_type()
                ),
            ));
        }
        if json.digest != r.digest() {
            return Err(input(
                "digest",
                format!(
                    "{} is not the digest of the request's fields ({})",
                    json.digest,
                    r.digest()
                ),
            ));
        }
        Ok(r)
    }

    /// Reads a request file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::from_json(&text)
    }

    /// Writes the request, all or nothing; refuses to overwrite an existing file.
    pub fn store(&self, path: &Path) -> Result<()> {
        if path.exists() {
            return Err(input("--out", format!("{} already exists", path.display())));
        }
        Ok(write_atomic(path, self.to_json().as_bytes())?)
    }

    /// One signer's signature of this request (offline).
    pub fn sign(&self, key: &PrivateKeySigner) -> Result<ApprovalSignature> {
        let digest = self.digest();
        Ok(ApprovalSignature {
            signer: key.address(),
            digest,
            signature: sign_compact(key, digest)?,
        })
    }

    /// The registry's `Approval` from signature files of members of `set`, ordered by signer.
    pub fn approval(&self, set: &SignerSet, sigs: &[ApprovalSignature]) -> Result<Approval> {
        let digest = self.digest();
        let mut signed: Vec<&ApprovalSignature> = sigs.iter().collect();
        signed.sort_unstable_by_key(|s| s.signer);
        signed.dedup_by_key(|s| s.signer);
        let mut bytes = Vec::with_capacity(64 * signed.len());
        for s in &signed {
            if s.digest != digest {
                return Err(input(
                    "--sig",
                    format!(
                        "the signature of {} is for digest {}, not this request's {digest}",
                        s.signer, s.digest
                    ),
                ));
            }
            if !set.signers().contains(&s.signer) {
                return Err(otaledger_core::Error::NotASigner { address: s.signer }.into());
            }
            bytes.extend_from_slice(&s.signature);
        }
        if signed.len() < usize::from(set.threshold()) {
            return Err(otaledger_core::Error::NotEnoughSigners {
                given: signed.len(),
                threshold: set.threshold(),
            }
            .into());
        }
        Ok(Approval {
            signers: set.signers().to_vec(),
            threshold: set.threshold(),
            signatures: Bytes::from(bytes),
        })
    }
}

/// One signer's EIP-2098 signature of an approval request's digest
/// (`otaledger-approval-signature/1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSignature {
    /// The signer.
    pub signer: Address,
    /// The digest signed.
    pub digest: B256,
    /// The 64-byte compact signature.
    pub signature: [u8; 64],
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignatureJson {
    format: String,
    signer: Address,
    digest: B256,
    signature: Bytes,
}

impl ApprovalSignature {
    /// The canonical JSON text.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&SignatureJson {
            format: SIGNATURE_FORMAT.into(),
            signer: self.signer,
            digest: self.digest,
            signature: Bytes::copy_from_slice(&self.signature),
        })
        .unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses a signature file and checks the signature recovers to its signer
    /// (a high-s signature is refused, as the registry refuses it).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| input("--sig", format!("{}: {reason}", path.display()));
        let json: SignatureJson = serde_json::from_str(text)
            .map_err(|e| bad(format!("not an approval signature file: {e}")))?;
        if json.format != SIGNATURE_FORMAT {
            return Err(bad(format!(
                "format {:?}, expected {SIGNATURE_FORMAT:?}",
                json.format
            )));
        }
        let signature: [u8; 64] = json.signature.as_ref().try_into().map_err(|_| {
            bad(format!(
                "signature is {} bytes, expected 64",
                json.signature.len()
            ))
        })?;
        // Refuses the high-s twin (`approval_signature_high_s_twin_is_refused`).
        let recovered = otaledger_core::signing::recover_compact(&signature, &json.digest)
            .map_err(|e| bad(e.to_string()))?;
        if recovered != json.signer {
            return Err(bad(format!(
                "signed by {recovered}, not by the signer {} it names",
                json.signer
            )));
        }
        Ok(Self {
            signer: json.signer,
            digest: json.digest,
            signature,
        })
    }

    /// Reads and checks a signature file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::from_json(&text, path)
    }

    /// Writes the file, all or nothing.
    pub fn store(&self, path: &Path) -> Result<()> {
        Ok(write_atomic(path, self.to_json().as_bytes())?)
    }
}

/// A request written by a command.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requested {
    /// The request file.
    pub request: PathBuf,
    /// The action.
    pub action: &'static str,
    /// The manufacturer whose signers must approve.
    pub manufacturer_id: u32,
    /// The nonce bound into the message, if any.
    pub nonce: Option<u64>,
    /// How many signatures are needed.
    pub threshold: u8,
    /// The digest to sign.
    pub digest: B256,
}

/// The manufacturer's nonce and current signer set.
async fn manufacturer_state(
    chain: &Chain,
    provider: &DynProvider,
    manufacturer_id: u32,
) -> Result<(u64, SignerSet)> {
    let m = UpdateRegistry::new(chain.registry(), provider)
        .manufacturer(manufacturer_id)
        .call()
        .await
        .map_err(|e| contract_error("reading the manufacturer", e))?;
    if m.signersHash.is_zero() {
        return Err(Error::NotFound {
            what: format!("manufacturer {manufacturer_id}"),
        });
    }
    let set = current_signer_set(chain, provider, manufacturer_id).await?;
    Ok((m.nonce, set))
}

/// The manufacturer of a model.
pub async fn model_manufacturer(
    chain: &Chain,
    provider: &DynProvider,
    model_id: u32,
) -> Result<u32> {
    let m = UpdateRegistry::new(chain.registry(), provider)
        .model(model_id)
        .call()
        .await
        .map_err(|e| contract_error("reading the model", e))?;
    if m.manufacturerId == 0 {
        return Err(Error::NotFound {
            what: format!("model {model_id}"),
        });
    }
    Ok(m.manufacturerId)
}

/// The manufacturer of a published, live release.
pub async fn release_manufacturer(
    chain: &Chain,
    provider: &DynProvider,
    release_id: B256,
) -> Result<u32> {
    let r = UpdateRegistry::new(chain.registry(), provider)
        .release(release_id)
        .call()
        .await
        .map_err(|e| contract_error("reading the release", e))?;
    if r.publishedAt.is_zero() {
        return Err(Error::NotFound {
            what: format!("release {release_id}"),
        });
    }
    if !r.revokedAt.is_zero() {
        return Err(input(
            "--release",
            format!("release {release_id} is already revoked"),
        ));
    }
    model_manufacturer(chain, provider, r.modelId).await
}

/// Builds the request for `action` against the chain's current state (nonce,
/// manufacturer) and writes it to `out`.
pub async fn request(
    chain: &Chain,
    provider: &DynProvider,
    manufacturer_id: Option<u32>,
    action: Action,
    out: &Path,
) -> Result<Requested> {
    let manufacturer_id = match (&action, manufacturer_id) {
        (Action::RaiseFloor { model_id, .. }, _) => {
            model_manufacturer(chain, provider, *model_id).await?
        }
        (Action::RevokeRelease { release_id, .. }, _) => {
            release_manufacturer(chain, provider, *release_id).await?
        }
        (_, Some(id)) => id,
        (_, None) => return Err(input("--manufacturer", "required for this action")),
    };
    let (nonce, set) = manufacturer_state(chain, provider, manufacturer_id).await?;
    let nonce = action.has_nonce().then_some(nonce);
    let action = match action {
        Action::RotateSigners { signers, threshold } => {
            let new = SignerSet::new(signers, threshold)?;
            Action::RotateSigners {
                signers: new.signers().to_vec(),
                threshold,
            }
        }
        other => other,
    };
    let req = Request::new(chain, manufacturer_id, nonce, action)?;
    req.store(out)?;
    Ok(Requested {
        request: out.to_owned(),
        action: req.action.name(),
        manufacturer_id,
        nonce,
        threshold: set.threshold(),
        digest: req.digest(),
    })
}

/// What `approval sign` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedApproval {
    /// The signature file.
    pub signature_file: PathBuf,
    /// The signer.
    pub signer: Address,
    /// The action.
    pub action: &'static str,
    /// The digest signed.
    pub digest: B256,
}

/// Signs a request (offline) into `out` (default: `<request dir>/<signer>.approval.sig.json`).
pub fn sign(
    request: &Path,
    key: &PrivateKeySigner,
    out: Option<PathBuf>,
) -> Result<SignedApproval> {
    let req = Request::load(request)?;
    let sig = req.sign(key)?;
    let out = out.unwrap_or_else(|| {
        request
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{}.approval.sig.json", key.address()))
    });
    sig.store(&out)?;
    Ok(SignedApproval {
        signature_file: out,
        signer: sig.signer,
        action: req.action.name(),
        digest: sig.digest,
    })
}

/// What `approval submit` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Submitted {
    /// The action.
    pub action: &'static str,
    /// The manufacturer.
    pub manufacturer_id: u32,
    /// The signers whose signatures were used, ascending.
    pub signers: Vec<Address>,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Assembles the ordered approval from signature files and sends the action.
/// Refuses a request for another chain or registry, or made at a nonce the
/// manufacturer has moved past.
pub async fn submit(
    chain: &Chain,
    provider: &DynProvider,
    request: &Path,
    sig_files: &[PathBuf],
) -> Result<Submitted> {
    let req = Request::load(request)?;
    if req.chain_id != chain.chain_id() || req.registry != chain.registry() {
        return Err(input(
            "--request",
            format!(
                "the request is for chain {} registry {}, the node is chain {} registry {}",
                req.chain_id,
                req.registry,
                chain.chain_id(),
                chain.registry()
            ),
        ));
    }
    let sigs = sig_files
        .iter()
        .map(|p| ApprovalSignature::load(p))
        .collect::<Result<Vec<_>>>()?;
    let (nonce, set) = manufacturer_state(chain, provider, req.manufacturer_id).await?;
    if let Some(n) = req.nonce
        && n != nonce
    {
        return Err(input(
            "--request",
            format!(
                "stale nonce: the request was made at nonce {n} but manufacturer {} is at nonce {nonce} \
                 (another approved change came first); make and sign a new request",
                req.manufacturer_id
            ),
        ));
    }
    let approval = req.approval(&set, &sigs)?;
    let mut signers: Vec<Address> = sigs.iter().map(|s| s.signer).collect();
    signers.sort_unstable();
    signers.dedup();
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let during = format!("submitting {}", req.action.name());
    let sent = match &req.action {
        Action::RotateSigners { signers, threshold } => {
            registry
                .rotateSigners(req.manufacturer_id, signers.clone(), *threshold, approval)
                .send()
                .await
        }
        Action::UpdateManufacturer { operator, payee } => {
            registry
                .updateManufacturer(req.manufacturer_id, *operator, *payee, approval)
                .send()
                .await
        }
        Action::RaiseFloor {
            model_id,
            min_version,
        } => {
            registry
                .raiseFloor(*model_id, *min_version, approval)
                .send()
                .await
        }
        Action::RevokeRelease { release_id, reason } => {
            registry
                .revokeRelease(*release_id, reason.clone(), approval)
                .send()
                .await
        }
    };
    let (mined, _) = mined(&during, sent).await?;
    Ok(Submitted {
        action: req.action.name(),
        manufacturer_id: req.manufacturer_id,
        signers,
        mined,
    })
}

/// `release revoke --emergency`: the operator revokes without signatures.
pub async fn emergency_revoke(
    chain: &Chain,
    provider: &DynProvider,
    release_id: B256,
    reason: String,
) -> Result<Mined> {
    check_reason("--reason", &reason)?;
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let (mined, _) = mined(
        "revoking the release (emergency)",
        registry.emergencyRevoke(release_id, reason).send().await,
    )
    .await?;
    Ok(mined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otaledger_core::Deployment;

    fn chain() -> Chain {
        Chain {
            deployment: Deployment {
                chain_id: 31337,
                registry: Address::repeat_byte(0x11),
                market: Address::repeat_byte(0x22),
                deployment_block: 0,
                salt: B256::ZERO,
                commit: String::new(),
            },
            rpc_url: None,
        }
    }

    /// A reason that would display as something else (a right-to-left override turning
    /// "revoked: exploit found" around, a newline faking a second line) is refused, in a new
    /// request and in a request file a signer loads.
    #[test]
    fn revocation_reasons_with_hidden_characters_are_refused() {
        check_reason("reason", "bricks model 3 — reverted to v2").unwrap();
        check_reason("reason", "für Geräte in der EU: 不要安装").unwrap();
        for bad in [
            "fine\u{202E}tiolpxe",
            "ok\u{2066}hidden\u{2069}",
            "a\u{200F}b",
            "line one\nsigned by: everyone",
            "bell\u{7}",
            "c1\u{85}",
        ] {
            let err = check_reason("reason", bad).unwrap_err().to_string();
            assert!(err.contains("formatting character"), "{bad:?}: {err}");
            let action = Action::RevokeRelease {
                release_id: B256::repeat_byte(7),
                reason: bad.into(),
            };
            assert!(Request::new(&chain(), 1, None, action.clone()).is_err());
            // A request file written by another tool is refused on load.
            let mut ok = Request::new(
                &chain(),
                1,
                None,
                Action::RevokeRelease {
                    release_id: B256::repeat_byte(7),
                    reason: "placeholder".into(),
                },
            )
            .unwrap();
            ok.action = action;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r.json");
            std::fs::write(&path, ok.to_json()).unwrap();
            assert!(Request::load(&path).is_err(), "{bad:?}");
        }
        let long = "x".repeat(MAX_REASON_LEN + 1);
        assert!(check_reason("reason", &long).is_err());
    }

    #[test]
    fn request_round_trips_and_mutations_are_refused() {
        let keys: Vec<PrivateKeySigner> = (1..=3u8)
            .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).unwrap())
            .collect();
        let mut signers: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        signers.sort();
        let req = Request::new(
            &chain(),
            7,
            Some(3),
            Action::RotateSigners {
                signers: signers.clone(),
                threshold: 2,
            },
        )
        .unwrap();
        let text = req.to_json();
        assert_eq!(Request::from_json(&text).unwrap(), req);
        // Any changed field changes the digest: the stored digest no longer matches.
        for (from, to) in [
            ("\"nonce\": 3", "\"nonce\": 4"),
            ("\"manufacturerId\": 7", "\"manufacturerId\": 8"),
            ("\"threshold\": 2", "\"threshold\": 3"),
            ("\"chainId\": 31337", "\"chainId\": 1"),
        ] {
            let bad = text.replace(from, to);
            assert_ne!(bad, text);
            let err = Request::from_json(&bad).unwrap_err().to_string();
            assert!(err.contains("digest"), "{from}: {err}");
        }
        let err = Request::from_json(&text.replace("approval-request/1", "approval-request/2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("format"), "{err}");
        let err = Request::from_json(&text.replace("\"nonce\": 3", "\"nonce\": null"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a nonce"), "{err}");
        // Truncated or garbage input is refused, never panics.
        for cut in (0..text.len()).step_by(7) {
            assert!(Request::from_json(&text[..cut]).is_err());
        }

        // Signatures: ordered by signer whatever the order given; a non-member and too few are refused.
        let set = SignerSet::new(signers.clone(), 2).unwrap();
        let s: Vec<ApprovalSignature> = keys.iter().map(|k| req.sign(k).unwrap()).collect();
        let a = req.approval(&set, &[s[2].clone(), s[0].clone()]).unwrap();
        let b = req.approval(&set, &[s[0].clone(), s[2].clone()]).unwrap();
        assert_eq!(a.signatures, b.signatures);
        let first = s[0].signer.min(s[2].signer);
        let first_sig = if first == s[0].signer { &s[0] } else { &s[2] };
        assert_eq!(&a.signatures[..64], &first_sig.signature[..]);
        assert!(req.approval(&set, &[s[1].clone()]).is_err());
        let stranger = PrivateKeySigner::from_bytes(&B256::repeat_byte(9)).unwrap();
        let err = req
            .approval(&set, &[s[0].clone(), req.sign(&stranger).unwrap()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a member"), "{err}");
        // A signature file whose signer field is changed is refused on load.
        let sig_text = s[0].to_json();
        let path = Path::new("x.sig.json");
        assert_eq!(ApprovalSignature::from_json(&sig_text, path).unwrap(), s[0]);
        let forged = sig_text.replace(
            &format!("{:?}", s[0].signer).to_lowercase()[2..],
            &format!("{:?}", s[1].signer).to_lowercase()[2..],
        );
        assert!(ApprovalSignature::from_json(&forged, path).is_err());
    }

    /// Review of issue 13: a signer reviews the request file by reading it. A
    /// key the parser ignores (unknown, another action's, or a look-alike of a
    /// real one) would show the signer a value that is not signed, so every key
    /// must be one of the action's; duplicates are refused too.
    #[test]
    fn request_with_unknown_look_alike_or_duplicate_keys_is_refused() {
        let req = Request::new(
            &chain(),
            7,
            None,
            Action::RaiseFloor {
                model_id: 3,
                min_version: 9,
            },
        )
        .unwrap();
        let text = req.to_json();
        assert!(text.contains("\"minVersion\": 9,"), "{text}");
        let add = |extra: &str| {
            text.replacen(
                "\"minVersion\": 9,",
                &format!("\"minVersion\": 9,\n  {extra},"),
                1,
            )
        };
        for (what, bad) in [
            ("unknown key", add("\"note\": \"routine floor raise to 2\"")),
            (
                "look-alike key (Cyrillic o)",
                add("\"minVersi\u{043e}n\": 2"),
            ),
            ("look-alike key (trailing space)", add("\"minVersion \": 2")),
            ("another action's key", add("\"threshold\": 1")),
            ("duplicate key", add("\"minVersion\": 2")),
            (
                "duplicate action tag",
                add("\"action\": \"revoke-release\""),
            ),
            ("duplicate top-level key", add("\"manufacturerId\": 8")),
        ] {
            assert_ne!(bad, text, "{what}");
            assert!(
                Request::from_json(&bad).is_err(),
                "{what}: a request with a key the parser ignores or repeats was accepted"
            );
        }
        assert_eq!(Request::from_json(&text).unwrap(), req);
    }

    /// Review of issue 13: seeded mutations of a valid request never panic, and
    /// whatever is accepted is the original request.
    #[test]
    fn mutated_requests_are_refused_or_the_original() {
        let req = Request::new(
            &chain(),
            7,
            None,
            Action::RevokeRelease {
                release_id: B256::repeat_byte(0x33),
                reason: "bricks model 3".into(),
            },
        )
        .unwrap();
        let text = req.to_json().into_bytes();
        // xorshift64*, seeded: reproducible without a dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d) as usize
        };
        for _ in 0..3000 {
            let mut bytes = text.clone();
            for _ in 0..1 + next() % 3 {
                let at = next() % (bytes.len() + 1);
                match next() % 4 {
                    0 if at < bytes.len() => bytes[at] ^= 1 << (next() % 8),
                    1 => bytes.insert(at, b"{}[]\",:0aA \\"[next() % 12]),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            let Ok(mutated) = String::from_utf8(bytes) else {
                continue;
            };
            if let Ok(r) = Request::from_json(&mutated) {
                assert_eq!(r, req, "{mutated}");
            }
        }
    }

    /// Review of issue 13: the high-s twin of an approval signature (EIP-2098
    /// can carry `s` up to 2^255) recovers to the same signer under `alloy`'s
    /// normalising recovery; the registry refuses it, so must the file reader.
    /// The pair is made with `s = floor(n/2)` and `n - s`, over the generator's
    /// x as `r`, for the (keyless) address they recover to.
    #[test]
    fn approval_signature_high_s_twin_is_refused() {
        use alloy::primitives::{Signature, U256};
        let n = U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )
        .unwrap();
        let r = U256::from_str_radix(
            "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
            16,
        )
        .unwrap();
        let digest = B256::repeat_byte(0x77);
        let signer = Signature::new(r, n >> 1, false)
            .recover_address_from_prehash(&digest)
            .unwrap();
        // The EIP-2098 bytes by hand: `Signature::as_erc2098` normalises s.
        let erc2098 = |s: U256, odd: bool| {
            let mut out = [0u8; 64];
            out[..32].copy_from_slice(&r.to_be_bytes::<32>());
            out[32..].copy_from_slice(&s.to_be_bytes::<32>());
            out[32] |= u8::from(odd) << 7;
            out
        };
        let (low, high) = (erc2098(n >> 1, false), erc2098(n - (n >> 1), true));
        assert_ne!(low, high);
        let file = |signature: [u8; 64]| {
            ApprovalSignature {
                signer,
                digest,
                signature,
            }
            .to_json()
        };
        let path = Path::new("x.sig.json");
        assert!(ApprovalSignature::from_json(&file(low), path).is_ok());
        assert!(
            ApprovalSignature::from_json(&file(high), path).is_err(),
            "the high-s twin of an approval signature was accepted"
        );
    }
}
