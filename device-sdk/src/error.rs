//! The crate's error type: one variant per refusal, grouped by pipeline step.

use alloc::{string::String, vec::Vec};

use alloy_primitives::{Address, B256, U256};
use alloy_trie::proof::ProofVerificationError;

use crate::layout::DeviceStatus;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why one endpoint's header answer was not counted towards the quorum (step 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    /// The endpoint gave no answer (transport error, timeout, refusal).
    #[error("endpoint {endpoint} gave no header: {reason}")]
    Unavailable {
        /// The endpoint's position in the configuration.
        endpoint: usize,
        /// What the transport said.
        reason: String,
    },
    /// The header RLP is larger than the limit.
    #[error("endpoint {endpoint} sent a {size}-byte header, the limit is {max}")]
    TooLarge {
        /// The endpoint.
        endpoint: usize,
        /// Bytes received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The header RLP does not decode, or has bytes after the header.
    #[error("endpoint {endpoint} sent an undecodable header: {reason}")]
    Decode {
        /// The endpoint.
        endpoint: usize,
        /// What the decoder said.
        reason: String,
    },
    /// The hash the endpoint claimed is not the hash of the fields it sent.
    #[error(
        "endpoint {endpoint} claims hash {claimed} for a header whose fields hash to {computed}"
    )]
    HashMismatch {
        /// The endpoint.
        endpoint: usize,
        /// What it claimed.
        claimed: B256,
        /// keccak256 of the RLP it sent.
        computed: B256,
    },
    /// The endpoint answered with another block than the one asked for.
    #[error("endpoint {endpoint} answered block {got} for block {requested}")]
    WrongNumber {
        /// The endpoint.
        endpoint: usize,
        /// The block asked for.
        requested: u64,
        /// The block in the header it sent.
        got: u64,
    },
}

/// Everything that makes the device refuse an update, and what can go wrong around it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- configuration ---
    /// A quorum that is not a strict majority (two forks could both reach it).
    #[error("quorum {k} of {n} is invalid: need 0 < n, k ≤ n and 2k > n")]
    InvalidQuorum {
        /// Agreement asked for.
        k: usize,
        /// Endpoints configured.
        n: usize,
    },
    /// The pipeline was given a different number of answers than endpoints configured.
    #[error("{given} answers for {configured} configured endpoints")]
    AnswerCount {
        /// Answers given.
        given: usize,
        /// Endpoints configured.
        configured: usize,
    },

    // --- step 1: trusted head ---
    /// Fewer than k endpoints report a latest block: the target block cannot be chosen.
    #[error("only {reported} endpoints reported a latest block, {needed} needed")]
    NotEnoughLatest {
        /// Endpoints that answered.
        reported: usize,
        /// The quorum.
        needed: usize,
    },
    /// The chain is not yet `confirmations` blocks long.
    #[error("latest block {latest} is shallower than {confirmations} confirmations")]
    ChainTooShort {
        /// The agreed latest block.
        latest: u64,
        /// Confirmations required.
        confirmations: u64,
    },
    /// No header hash reached the quorum (lying, forked or unavailable endpoints).
    #[error(
        "no quorum on block {number}: best hash had {agreeing} of {needed} endpoints; faults: {faults:?}"
    )]
    NoQuorum {
        /// The block asked for.
        number: u64,
        /// Endpoints agreeing on the most common valid hash.
        agreeing: usize,
        /// The quorum.
        needed: usize,
        /// Why the other answers were not counted.
        faults: Vec<HeaderFault>,
    },
    /// The agreed head is older than `max_age` by the device clock (freeze attack).
    #[error(
        "head {number} has timestamp {timestamp}, {age} s before now ({now}); the limit is {max_age} s"
    )]
    StaleHead {
        /// The head's number.
        number: u64,
        /// Its timestamp.
        timestamp: u64,
        /// The device clock.
        now: u64,
        /// `now − timestamp`.
        age: u64,
        /// The limit.
        max_age: u64,
    },
    /// The agreed head is timestamped further after the device clock than the skew allows: the
    /// device clock is wrong, so freshness cannot be judged.
    #[error(
        "head {number} has timestamp {timestamp}, after the device clock {now} by more than {max_skew} s"
    )]
    HeadInFuture {
        /// The head's number.
        number: u64,
        /// Its timestamp.
        timestamp: u64,
        /// The device clock.
        now: u64,
        /// The tolerance.
        max_skew: u64,
    },
    /// A head was to be reused ([`crate::Checker::resume`]) after the device clock moved on by
    /// more than [`crate::Limits::head_reuse_secs`] since it was proven (or moved back): a new
    /// head must be voted ([`crate::client::Client::check_at`] does so itself).
    #[error(
        "head {number} was proven at device time {proven_at}; at {now} it may no longer be reused (at most {max} s later)"
    )]
    HeadReuseExpired {
        /// The head's number.
        number: u64,
        /// The device clock when it was proven.
        proven_at: u64,
        /// The device clock now.
        now: u64,
        /// The reuse limit.
        max: u64,
    },
    /// [`crate::client::Client::check_at`] was given a [`crate::LatestVerified`] another client
    /// (other endpoints, another quorum or device) proved: a misuse, not a verdict.
    #[error(
        "the latest version was proven by another client (its endpoints voted that head, not this client's)"
    )]
    ForeignLatest,
    /// The agreed head is below the highest block this device already trusted (rewind).
    #[error("head {number} is below block {highest_seen}, already seen")]
    HeadBehindHighestSeen {
        /// The head's number.
        number: u64,
        /// The highest block seen.
        highest_seen: u64,
    },

    // --- step 2: state proofs ---
    /// A proof has more nodes, or a larger node, than the limits allow.
    #[error(
        "proof for {address} slot {slot:?} has {nodes} nodes (max {max_nodes}) or a node of {largest} bytes (max {max_size})"
    )]
    ProofTooLarge {
        /// The account.
        address: Address,
        /// The slot, or `None` for the account proof.
        slot: Option<B256>,
        /// Nodes in the proof.
        nodes: usize,
        /// Largest node.
        largest: usize,
        /// Node limit.
        max_nodes: usize,
        /// Size limit.
        max_size: usize,
    },
    /// The proof is for another account than the one asked for.
    #[error("proof is for account {got}, asked for {expected}")]
    ProofWrongAccount {
        /// The account asked for.
        expected: Address,
        /// The account answered.
        got: Address,
    },
    /// The storage proofs are not exactly the slots asked for, in order.
    #[error("proof for {address} answers slots {got:?}, asked for {expected:?}")]
    ProofWrongSlots {
        /// The account.
        address: Address,
        /// The slots asked for.
        expected: Vec<B256>,
        /// The slots answered.
        got: Vec<B256>,
    },
    /// The account proof does not verify against the head's state root.
    #[error("account proof of {address} does not verify against state root {state_root}: {source}")]
    AccountProof {
        /// The account.
        address: Address,
        /// The trusted head's state root.
        state_root: B256,
        /// What the verifier found.
        source: alloc::boxed::Box<ProofVerificationError>,
    },
    /// The account does not exist at the head (wrong address or wrong chain).
    #[error("account {address} does not exist at state root {state_root}")]
    AccountMissing {
        /// The account.
        address: Address,
        /// The trusted head's state root.
        state_root: B256,
    },
    /// A storage proof does not verify against the proven account's storage root.
    #[error("storage proof of {address} slot {slot} (value {value}) does not verify: {source}")]
    StorageProof {
        /// The account.
        address: Address,
        /// The slot.
        slot: B256,
        /// The value the endpoint claimed.
        value: U256,
        /// What the verifier found.
        source: alloc::boxed::Box<ProofVerificationError>,
    },

    // --- step 3: policy ---
    /// The device's word is not an active device of the configured model.
    #[error(
        "device {device_index} is {status:?} of model {model_id}, expected an active device of model {expected_model}"
    )]
    DeviceNotActive {
        /// The device's index.
        device_index: u64,
        /// Its proven status.
        status: DeviceStatus,
        /// Its proven model.
        model_id: u32,
        /// The configured model.
        expected_model: u32,
    },
    /// The model does not exist or belongs to another manufacturer.
    #[error("model {model_id} belongs to manufacturer {found}, expected {expected}")]
    ModelNotOfManufacturer {
        /// The model.
        model_id: u32,
        /// The configured manufacturer.
        expected: u32,
        /// The proven owner (0: no such model).
        found: u32,
    },
    /// No release is stored under the manifest's id (unpublished, or from another registry).
    #[error("no release {release_id} is published in this registry")]
    ReleaseNotPublished {
        /// The manifest's release id.
        release_id: B256,
    },
    /// The release was revoked.
    #[error("release {release_id} was revoked at {revoked_at}")]
    ReleaseRevoked {
        /// The release.
        release_id: B256,
        /// When.
        revoked_at: u64,
    },
    /// The manifest is for another model than the device's (mix-and-match, wrong software).
    #[error(
        "manifest of release {release_id} is for model {manifest_model}, the device is model {device_model}"
    )]
    WrongModel {
        /// The release.
        release_id: B256,
        /// The manifest's model.
        manifest_model: u32,
        /// The device's model.
        device_model: u32,
    },
    /// The proven release word disagrees with the manifest that hashes to its id.
    #[error(
        "release word of {release_id} says model {word_model} version {word_version}, the manifest model {manifest_model} version {manifest_version}"
    )]
    ReleaseWordMismatch {
        /// The release.
        release_id: B256,
        /// Model in the word.
        word_model: u32,
        /// Version in the word.
        word_version: u64,
        /// Model in the manifest.
        manifest_model: u32,
        /// Version in the manifest.
        manifest_version: u64,
    },
    /// The manifest's version is not newer than the installed one (rollback, replay).
    #[error("version {version} is not newer than the installed version {installed}")]
    Rollback {
        /// The manifest's version.
        version: u64,
        /// The installed version.
        installed: u64,
    },
    /// The manifest's version is below the model's proven floor.
    #[error("version {version} is below the model's floor {floor}")]
    BelowFloor {
        /// The manifest's version.
        version: u64,
        /// The proven `minVersion`.
        floor: u64,
    },
    /// The manifest is not the model's latest release.
    #[error("version {version} is not the model's latest version {latest}")]
    NotLatest {
        /// The manifest's version.
        version: u64,
        /// The proven `latestVersion`.
        latest: u64,
    },
    /// The device's entitlement bit for the release is not set (unpaid).
    #[error("device {device_index} is not entitled to release {release_id}")]
    NotEntitled {
        /// The release.
        release_id: B256,
        /// The device.
        device_index: u64,
    },

    // --- step 4: manifest signatures ---
    /// The approval's signer set has more members than the contract allows.
    #[error("approval names {given} signers, at most {max} exist")]
    TooManySigners {
        /// Signers named.
        given: usize,
        /// `MAX_SIGNERS`.
        max: usize,
    },
    /// The approval's signer set and threshold do not hash to the proven `signersHash`.
    #[error("approval's signer set hashes to {given}, the manufacturer's is {proven}")]
    SignerSetMismatch {
        /// The proven `signersHash`.
        proven: B256,
        /// Hash of the approval's set.
        given: B256,
    },
    /// The signatures are not a whole number of 64-byte signatures.
    #[error("signatures are {len} bytes, not a multiple of 64")]
    SignatureLength {
        /// Bytes given.
        len: usize,
    },
    /// Fewer signatures than the threshold (or more than the set has members).
    #[error("{given} signatures for a {threshold}-of-{signers} set")]
    NotEnoughSignatures {
        /// Signatures given.
        given: usize,
        /// The threshold.
        threshold: u8,
        /// Members of the set.
        signers: usize,
    },
    /// A signature's `s` is in the upper half of the curve order (malleable twin).
    #[error("signature {index} has a high s")]
    SignatureMalleable {
        /// Position of the signature.
        index: usize,
    },
    /// A signature does not recover to the next ascending member of the set.
    #[error(
        "signature {index} recovers to {recovered:?}, not an ascending member of the signer set"
    )]
    InvalidSignature {
        /// Position of the signature.
        index: usize,
        /// The recovered address, if any.
        recovered: Option<Address>,
    },

    // --- std client ---
    /// A transport failed (the message names the endpoint and the call).
    #[cfg(feature = "std")]
    #[error("rpc endpoint {endpoint}: {reason}")]
    Rpc {
        /// The endpoint's position in the configuration.
        endpoint: usize,
        /// What went wrong.
        reason: String,
    },
    /// Reading or writing the device state failed.
    #[cfg(feature = "std")]
    #[error("device state {path}: {source}")]
    StateIo {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The device state file is not valid.
    #[cfg(feature = "std")]
    #[error("device state {path} is invalid: {source}")]
    StateFile {
        /// The file.
        path: std::path::PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// No source had the manifest and approval of the proven latest release (the indexer or the
    /// chain's logs): nothing can be checked yet.
    #[cfg(feature = "std")]
    #[error("no source has release {version} of model {model_id}: {reason}")]
    ReleaseUnavailable {
        /// The model.
        model_id: u32,
        /// The proven latest version.
        version: u64,
        /// What the sources said.
        reason: String,
    },

    // --- step 5: key ---
    /// No key service has issued this device's key for the release (not paid, not yet
    /// confirmed): "not entitled yet", retried at the next check, not an error loop.
    #[cfg(feature = "std")]
    #[error(
        "no key for release {release_id} issued to device {device_index} yet ({answered} services answered 404)"
    )]
    KeyNotIssued {
        /// The release.
        release_id: B256,
        /// The device.
        device_index: u64,
        /// Services that answered "not issued".
        answered: usize,
    },
    /// No key service could be reached or gave a usable answer.
    #[cfg(feature = "std")]
    #[error("no key service answered: {reasons:?}")]
    KeyServiceUnavailable {
        /// Each service's failure, in order.
        reasons: Vec<String>,
    },
    /// A key delivery was refused: malformed, not signed by the configured key service, for
    /// another chain, registry or device, or not decryptable with the identity key.
    #[cfg(feature = "std")]
    #[error("key delivery refused: {source}")]
    KeyRefused {
        /// The check that failed.
        source: alloc::boxed::Box<otaledger_core::Error>,
    },
    /// A (validly signed) key delivery for another release than the one approved.
    #[cfg(feature = "std")]
    #[error("key delivery is for release {got}, the approved release is {expected}")]
    KeyWrongRelease {
        /// The approved release.
        expected: B256,
        /// The delivery's release.
        got: B256,
    },

    // --- step 6: download ---
    /// The manifest's `bundleCid` is not a CID this client can fetch.
    #[cfg(feature = "std")]
    #[error("manifest bundleCid is not a usable CID: {reason}")]
    BundleCid {
        /// Why.
        reason: String,
    },
    /// The manifest's `bundleSize` is above the compiled-in ceiling.
    #[cfg(feature = "std")]
    #[error("manifest bundleSize {size} is above the ceiling {max}")]
    BundleTooLarge {
        /// The manifest's size.
        size: u64,
        /// The ceiling ([`crate::client::MAX_BUNDLE_SIZE`]).
        max: u64,
    },
    /// The verified fetch failed at every gateway (tampered or wrong blocks, truncated or
    /// endless responses, too slow, unreachable); the source lists every attempt.
    #[cfg(feature = "std")]
    #[error("download failed: {source}")]
    Download {
        /// The fetch's error with every gateway attempt.
        source: alloc::boxed::Box<otaledger_ipfs::FetchError>,
    },
    /// The downloaded bundle's SHA-256 is not the manifest's `bundleSha256`.
    #[cfg(feature = "std")]
    #[error("bundle sha256 is {actual}, the manifest says {expected}")]
    BundleHash {
        /// The manifest's.
        expected: B256,
        /// The download's.
        actual: B256,
    },

    // --- step 7: decryption ---
    /// The bundle header names another chain, registry, model or version than the approved
    /// release.
    #[cfg(feature = "std")]
    #[error("bundle is for {field} {found}, the approved release has {expected}")]
    BundleTarget {
        /// The field.
        field: &'static str,
        /// The header's value.
        found: String,
        /// The release's.
        expected: String,
    },
    /// Decryption failed: a malformed header, a key that does not satisfy the policy, a failed
    /// key commitment, a tampered, reordered, duplicated, truncated or extended segment.
    #[cfg(feature = "std")]
    #[error("decryption refused: {source}")]
    Decrypt {
        /// The bundle check that failed.
        source: alloc::boxed::Box<otaledger_core::Error>,
    },
    /// The decrypted image's SHA-256 is not the manifest's `imageSha256`.
    #[cfg(feature = "std")]
    #[error("image sha256 is {actual}, the manifest says {expected}")]
    ImageHash {
        /// The manifest's.
        expected: B256,
        /// The image's.
        actual: B256,
    },

    // --- step 8: install ---
    /// Reading or writing a slot or the boot state failed.
    #[cfg(feature = "std")]
    #[error("installer {path}: {source}")]
    InstallIo {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The boot state file is corrupt, or a step was called out of order.
    #[cfg(feature = "std")]
    #[error("installer: {reason}")]
    InstallState {
        /// What is wrong.
        reason: String,
    },
    /// The new image failed its health check and was rolled back: the old one runs.
    #[cfg(feature = "std")]
    #[error("version {version} failed its health check and was rolled back: {reason}")]
    RolledBack {
        /// The version rolled back.
        version: u64,
        /// What the health check said.
        reason: String,
    },
    /// A simulated power cut after an install step (tests; [`crate::client::CrashPoint`]).
    #[cfg(feature = "std")]
    #[error("simulated power cut after {point:?}")]
    Crashed {
        /// Where.
        point: crate::client::CrashPoint,
    },

    // --- step 9: report ---
    /// The report queue file is unreadable or corrupt, or a report could not be signed.
    #[cfg(feature = "std")]
    #[error("report queue {path}: {reason}")]
    ReportQueue {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },

    // --- the whole run ---
    /// Another updater holds the device's directory (its lock file): two runs at once would
    /// undo each other's install steps and reuse report nonces.
    #[cfg(feature = "std")]
    #[error("another updater is running on this device ({path} is locked)")]
    Busy {
        /// The lock file.
        path: std::path::PathBuf,
    },
}

impl Error {
    /// The pipeline step (1–9) whose check refused, or `None` for configuration, transport and
    /// storage failures that are no verdict on the update.
    pub fn step(&self) -> Option<u8> {
        use Error::*;
        Some(match self {
            NotEnoughLatest { .. }
            | ChainTooShort { .. }
            | NoQuorum { .. }
            | StaleHead { .. }
            | HeadInFuture { .. }
            | HeadReuseExpired { .. }
            | HeadBehindHighestSeen { .. } => 1,
            ProofTooLarge { .. }
            | ProofWrongAccount { .. }
            | ProofWrongSlots { .. }
            | AccountProof { .. }
            | AccountMissing { .. }
            | StorageProof { .. } => 2,
            DeviceNotActive { .. }
            | ModelNotOfManufacturer { .. }
            | ReleaseNotPublished { .. }
            | ReleaseRevoked { .. }
            | WrongModel { .. }
            | ReleaseWordMismatch { .. }
            | Rollback { .. }
            | BelowFloor { .. }
            | NotLatest { .. }
            | NotEntitled { .. } => 3,
            TooManySigners { .. }
            | SignerSetMismatch { .. }
            | SignatureLength { .. }
            | NotEnoughSignatures { .. }
            | SignatureMalleable { .. }
            | InvalidSignature { .. } => 4,
            #[cfg(feature = "std")]
            KeyRefused { .. } | KeyWrongRelease { .. } => 5,
            #[cfg(feature = "std")]
            BundleCid { .. } | BundleTooLarge { .. } | Download { .. } | BundleHash { .. } => 6,
            #[cfg(feature = "std")]
            BundleTarget { .. } | Decrypt { .. } | ImageHash { .. } => 7,
            #[cfg(feature = "std")]
            RolledBack { .. } => 8,
            _ => return None,
        })
    }

    /// The refusal class: `[a-z0-9-]`, the `detail` of a signed install report
    /// (`otaledger_core::report`), stable across versions.
    pub fn class(&self) -> &'static str {
        use Error::*;
        match self {
            InvalidQuorum { .. } | AnswerCount { .. } | ForeignLatest => "config",
            NotEnoughLatest { .. } | ChainTooShort { .. } | NoQuorum { .. } => "head-quorum",
            StaleHead { .. } | HeadInFuture { .. } | HeadReuseExpired { .. } => "head-freshness",
            HeadBehindHighestSeen { .. } => "head-rewind",
            ProofTooLarge { .. }
            | ProofWrongAccount { .. }
            | ProofWrongSlots { .. }
            | AccountProof { .. }
            | StorageProof { .. } => "state-proof",
            AccountMissing { .. } => "wrong-chain",
            DeviceNotActive { .. } => "device-inactive",
            ModelNotOfManufacturer { .. } | WrongModel { .. } => "wrong-model",
            ReleaseNotPublished { .. } | ReleaseWordMismatch { .. } => "not-published",
            ReleaseRevoked { .. } => "revoked",
            Rollback { .. } | BelowFloor { .. } => "rollback",
            NotLatest { .. } => "not-latest",
            NotEntitled { .. } => "not-entitled",
            TooManySigners { .. }
            | SignerSetMismatch { .. }
            | SignatureLength { .. }
            | NotEnoughSignatures { .. }
            | SignatureMalleable { .. }
            | InvalidSignature { .. } => "signatures",
            #[cfg(feature = "std")]
            Rpc { .. } => "rpc",
            #[cfg(feature = "std")]
            StateIo { .. } | StateFile { .. } => "device-state",
            #[cfg(feature = "std")]
            ReleaseUnavailable { .. } => "release-unavailable",
            #[cfg(feature = "std")]
            KeyNotIssued { .. } => "key-not-issued",
            #[cfg(feature = "std")]
            KeyServiceUnavailable { .. } => "key-service",
            #[cfg(feature = "std")]
            KeyRefused { .. } => "key-refused",
            #[cfg(feature = "std")]
            KeyWrongRelease { .. } => "key-wrong-release",
            #[cfg(feature = "std")]
            BundleCid { .. } | BundleTooLarge { .. } => "bundle-manifest",
            #[cfg(feature = "std")]
            Download { .. } => "download",
            #[cfg(feature = "std")]
            BundleHash { .. } => "bundle-hash",
            #[cfg(feature = "std")]
            BundleTarget { .. } => "bundle-target",
            #[cfg(feature = "std")]
            Decrypt { .. } => "decrypt",
            #[cfg(feature = "std")]
            ImageHash { .. } => "image-hash",
            #[cfg(feature = "std")]
            InstallIo { .. } | InstallState { .. } | Crashed { .. } => "install",
            #[cfg(feature = "std")]
            RolledBack { .. } => "health-check",
            #[cfg(feature = "std")]
            ReportQueue { .. } => "report-queue",
            #[cfg(feature = "std")]
            Busy { .. } => "busy",
        }
    }
}
