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
}
