//! The update check as one numbered pipeline, in the manner of TUF's client workflow (and AWS
//! tough's `load_root → load_timestamp → …`). Each step is a method that consumes the previous
//! step's verified value, so no step can be skipped or reordered:
//!
//! 1. [`Checker::head`]: trusted head ([`crate::head`]);
//! 2. [`HeadVerified::state`]: state proofs against its state root ([`crate::state`]);
//! 3. [`StateVerified::policy`]: policy over the proven words ([`crate::policy`]);
//! 4. [`PolicyPassed::signatures`]: the manifest's threshold signatures ([`crate::approval`]).
//!
//! The result, an [`ApprovedUpdate`], is what the later steps (key, download, decryption,
//! install, report) act on. The pipeline is sans-IO: the caller fetches what
//! [`HeadVerified::proof_request`] names and passes the untrusted answers in. It never writes the
//! device state: the caller persists [`ApprovedUpdate::head`]'s number (and later the installed
//! version) only once every step passed.

use alloc::vec::Vec;

use alloy_primitives::{Address, B256};

use crate::{
    Approval, Limits, Manifest, Result, approval,
    contracts::{release_id, signing_digest},
    head::{self, RawHeader, TrustedHead},
    layout::{self, DeviceWord, ModelWord, ReleaseWord},
    policy::{self, ProvenWords},
    state::{AccountProof, verify_account},
};

/// What a device is, fixed at provisioning: its trust roots on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The chain id (part of the EIP-712 domain).
    pub chain_id: u64,
    /// The `UpdateRegistry` address.
    pub registry: Address,
    /// The `UpdateMarket` address.
    pub market: Address,
    /// The device's manufacturer.
    pub manufacturer_id: u32,
    /// The device's model.
    pub model_id: u32,
    /// The device's global index in the registry.
    pub device_index: u64,
}

/// What a device remembers between checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "camelCase", deny_unknown_fields)
)]
pub struct DeviceState {
    /// The installed firmware's version (0 before the first update).
    pub installed_version: u64,
    /// The highest block number the device trusted: a head is never taken below it.
    pub highest_block: u64,
}

/// The pipeline's entry: a device's configuration, limits, state and clock reading.
#[derive(Debug, Clone)]
pub struct Checker<'a> {
    config: &'a DeviceConfig,
    limits: &'a Limits,
    state: DeviceState,
    now: u64,
}

impl<'a> Checker<'a> {
    /// Starts a check at device time `now` (unix seconds).
    pub fn new(config: &'a DeviceConfig, limits: &'a Limits, state: DeviceState, now: u64) -> Self {
        Self {
            config,
            limits,
            state,
            now,
        }
    }

    /// The block to ask every endpoint for, from each endpoint's reported latest block (`None`
    /// where it failed).
    pub fn target_block(&self, latests: &[Option<u64>]) -> Result<u64> {
        head::target_block(latests, self.limits)
    }

    /// Step 1, trusted head: block `number` as a quorum of endpoints reported it (one answer per
    /// configured endpoint, `Err` where it failed).
    pub fn head(
        self,
        number: u64,
        answers: &[core::result::Result<RawHeader, alloc::string::String>],
    ) -> Result<HeadVerified<'a>> {
        let head = head::trusted_head(
            self.limits,
            number,
            answers,
            self.now,
            self.state.highest_block,
        )?;
        Ok(HeadVerified {
            checker: self,
            head,
        })
    }

    /// Whether [`Self::resume`] may reuse `latest`'s head: the clock has moved forward by at
    /// most [`Limits::head_reuse_secs`] since `latest` was proven. Otherwise vote a new head.
    pub fn may_resume(&self, latest: &LatestVerified) -> bool {
        self.now >= latest.proven_at && self.now - latest.proven_at <= self.limits.head_reuse_secs
    }

    /// Step 1 again without asking anyone: the head `latest` was proven at, if the clock moved
    /// on by at most [`Limits::head_reuse_secs`] since ([`Self::may_resume`]; else
    /// [`crate::Error::HeadReuseExpired`]: vote a new head), the head is still fresh at this checker's
    /// clock reading and not below its highest block seen ([`head::check_fresh`], the same
    /// checks as a voted head). A [`LatestVerified`] comes only from [`HeadVerified::latest`]
    /// and cannot be built or changed outside this crate, so the head it carries won a vote of
    /// the endpoints it was asked of; the caller must pass one from a checker of the same
    /// device configuration and endpoints, as [`crate::client::Client::check_at`] makes sure.
    pub fn resume(self, latest: &LatestVerified) -> Result<HeadVerified<'a>> {
        if !self.may_resume(latest) {
            return Err(crate::Error::HeadReuseExpired {
                number: latest.head.number,
                proven_at: latest.proven_at,
                now: self.now,
                max: self.limits.head_reuse_secs,
            });
        }
        head::check_fresh(
            &latest.head,
            self.limits,
            self.now,
            self.state.highest_block,
        )?;
        Ok(HeadVerified {
            checker: self,
            head: latest.head.clone(),
        })
    }
}

/// The state proofs step 2 needs: `eth_getProof(address, slots, block)` for each account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofRequest {
    /// The trusted head's number.
    pub block: u64,
    /// The registry and its slots: signers hash, model, device, release.
    pub registry: (Address, Vec<B256>),
    /// The market and its slot: the device's entitlement word.
    pub market: (Address, Vec<B256>),
}

/// Step 1 passed: the head is trusted.
#[derive(Debug, Clone)]
pub struct HeadVerified<'a> {
    checker: Checker<'a>,
    head: TrustedHead,
}

impl<'a> HeadVerified<'a> {
    /// The trusted head.
    pub fn head(&self) -> &TrustedHead {
        &self.head
    }

    /// The proofs to fetch for `manifest` (its release id selects the release and entitlement
    /// words; slots from [`crate::layout`]).
    pub fn proof_request(&self, manifest: &Manifest) -> ProofRequest {
        let c = self.checker.config;
        let id = release_id(manifest);
        ProofRequest {
            block: self.head.number,
            registry: (
                c.registry,
                alloc::vec![
                    layout::manufacturer_signers_hash(c.manufacturer_id),
                    layout::model(c.model_id),
                    layout::device(c.device_index),
                    layout::release(id),
                ],
            ),
            market: (
                c.market,
                alloc::vec![layout::entitlement_word(id, c.device_index)],
            ),
        }
    }

    /// The proof the "is anything newer?" question needs, before any manifest is known: the
    /// registry's model and device words.
    pub fn latest_request(&self) -> (Address, Vec<B256>) {
        let c = self.checker.config;
        (
            c.registry,
            alloc::vec![layout::model(c.model_id), layout::device(c.device_index)],
        )
    }

    /// Step 2 for the "is anything newer?" question: verifies the registry's answer to
    /// [`Self::latest_request`] and checks the device is active, of its model, and the model of
    /// its manufacturer. The result proves, at this head, the model's latest version: an
    /// "up to date" answer is as trustworthy as an update.
    pub fn latest(self, registry: &AccountProof) -> Result<LatestVerified> {
        let (address, slots) = self.latest_request();
        let c = self.checker.config;
        let r = verify_account(&self.head, self.checker.limits, address, &slots, registry)?;
        let model = ModelWord::decode(r[0]);
        let device = DeviceWord::decode(r[1]);
        if device.status != layout::DeviceStatus::Active || device.model_id != c.model_id {
            return Err(crate::Error::DeviceNotActive {
                device_index: c.device_index,
                status: device.status,
                model_id: device.model_id,
                expected_model: c.model_id,
            });
        }
        if model.manufacturer_id != c.manufacturer_id {
            return Err(crate::Error::ModelNotOfManufacturer {
                model_id: c.model_id,
                expected: c.manufacturer_id,
                found: model.manufacturer_id,
            });
        }
        Ok(LatestVerified {
            head: self.head,
            model,
            installed: self.checker.state.installed_version,
            proven_at: self.checker.now,
            issuer: 0,
        })
    }

    /// Step 2, state proofs: verifies the registry's and the market's answers to
    /// [`Self::proof_request`] against the head's state root.
    pub fn state(
        self,
        manifest: &Manifest,
        registry: &AccountProof,
        market: &AccountProof,
    ) -> Result<StateVerified<'a>> {
        let request = self.proof_request(manifest);
        let limits = self.checker.limits;
        let r = verify_account(
            &self.head,
            limits,
            request.registry.0,
            &request.registry.1,
            registry,
        )?;
        let m = verify_account(
            &self.head,
            limits,
            request.market.0,
            &request.market.1,
            market,
        )?;
        let words = ProvenWords {
            signers_hash: B256::from(r[0]),
            model: ModelWord::decode(r[1]),
            device: DeviceWord::decode(r[2]),
            release_id: release_id(manifest),
            release: ReleaseWord::decode(r[3]),
            entitlement: m[0],
        };
        Ok(StateVerified {
            checker: self.checker,
            head: self.head,
            manifest: manifest.clone(),
            words,
        })
    }
}

/// The model's proven latest version at a trusted head ([`HeadVerified::latest`]). Only the
/// pipeline makes one and no one changes it (private fields, read through [`Self::head`],
/// [`Self::model`], [`Self::installed`]), so its head won a vote; [`Checker::resume`] relies on
/// that. Neither a struct literal nor an edit of an owned value compiles outside this crate:
///
/// ```compile_fail,E0616
/// fn refresh(latest: &mut otaledger_device_sdk::LatestVerified, now: u64) {
///     latest.head.timestamp = now; // a stale head made fresh again
/// }
/// ```
///
/// ```compile_fail,E0616
/// fn forge(latest: &mut otaledger_device_sdk::LatestVerified, root: alloy_primitives::B256) {
///     latest.head.state_root = root; // proofs of another state
/// }
/// ```
///
/// ```compile_fail,E0451
/// use otaledger_device_sdk::{LatestVerified, head::TrustedHead, layout::ModelWord};
/// fn build(head: TrustedHead, model: ModelWord) -> LatestVerified {
///     LatestVerified { head, model, installed: 0 } // a head no quorum voted
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestVerified {
    head: TrustedHead,
    model: ModelWord,
    installed: u64,
    /// The device clock when it was proven.
    proven_at: u64,
    /// The [`crate::client::Client`] that proved it (0: the pipeline used directly).
    issuer: u64,
}

impl LatestVerified {
    /// The head it was proven at.
    pub fn head(&self) -> &TrustedHead {
        &self.head
    }

    /// The model word (latest version, floor).
    pub fn model(&self) -> ModelWord {
        self.model
    }

    /// The device's installed version when the check started.
    pub fn installed(&self) -> u64 {
        self.installed
    }

    /// The device clock's reading when it was proven.
    pub fn proven_at(&self) -> u64 {
        self.proven_at
    }

    /// Marks it as proven by the client `issuer` (see [`crate::client::Client::check_at`]).
    #[cfg(feature = "std")]
    pub(crate) fn issued_by(mut self, issuer: u64) -> Self {
        self.issuer = issuer;
        self
    }

    /// The client that proved it (0: none).
    #[cfg(feature = "std")]
    pub(crate) fn issuer(&self) -> u64 {
        self.issuer
    }

    /// The version to look for, if the model's latest is newer than the installed one; `None`
    /// is a proven "up to date".
    pub fn newer(&self) -> Option<u64> {
        (self.model.latest_version > self.installed).then_some(self.model.latest_version)
    }
}

/// Step 2 passed: the words are proven.
#[derive(Debug, Clone)]
pub struct StateVerified<'a> {
    checker: Checker<'a>,
    head: TrustedHead,
    manifest: Manifest,
    words: ProvenWords,
}

impl<'a> StateVerified<'a> {
    /// The proven words.
    pub fn words(&self) -> &ProvenWords {
        &self.words
    }

    /// Step 3, policy.
    pub fn policy(self) -> Result<PolicyPassed<'a>> {
        policy::check(
            self.checker.config,
            self.checker.state.installed_version,
            &self.words,
            &self.manifest,
        )?;
        Ok(PolicyPassed { inner: self })
    }
}

/// Step 3 passed: the chain allows this device to install this manifest.
#[derive(Debug, Clone)]
pub struct PolicyPassed<'a> {
    inner: StateVerified<'a>,
}

impl PolicyPassed<'_> {
    /// Step 4, manifest and signatures: `approval` must be the proven signer set's approval of
    /// the manifest under this chain's and registry's domain.
    pub fn signatures(self, approval: &Approval) -> Result<ApprovedUpdate> {
        let s = self.inner;
        let c = s.checker.config;
        let digest = signing_digest(&s.manifest, c.chain_id, c.registry);
        let signers = approval::verify(approval, s.words.signers_hash, digest)?;
        Ok(ApprovedUpdate {
            release_id: s.words.release_id,
            manifest: s.manifest,
            head: s.head,
            signers,
        })
    }
}

/// An update every step approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedUpdate {
    /// The release id (the manifest's struct hash).
    pub release_id: B256,
    /// The manifest (sizes and hashes the download and decryption steps enforce).
    pub manifest: Manifest,
    /// The head the decision was made at.
    pub head: TrustedHead,
    /// The signers whose signatures were verified, ascending.
    pub signers: Vec<Address>,
}

/// Runs steps 1–4 in order over answers already fetched (the whole pipeline in one call, for
/// callers that fetch everything up front, fuzzing and benchmarks).
#[allow(clippy::too_many_arguments)]
pub fn check_update(
    config: &DeviceConfig,
    limits: &Limits,
    state: DeviceState,
    now: u64,
    number: u64,
    headers: &[core::result::Result<RawHeader, alloc::string::String>],
    manifest: &Manifest,
    registry: &AccountProof,
    market: &AccountProof,
    approval: &Approval,
) -> Result<ApprovedUpdate> {
    Checker::new(config, limits, state, now)
        .head(number, headers)?
        .state(manifest, registry, market)?
        .policy()?
        .signatures(approval)
}
