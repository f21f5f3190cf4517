// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IUpdateRegistry
/// @notice The authority of OTA Ledger: manufacturers and their m-of-n signer sets, device models with a version
/// floor, devices provisioned in Merkle batches, and threshold-signed firmware releases.
/// @dev Types, errors and events of `UpdateRegistry`. EIP-712 type strings, the signer-set hash, the Merkle leaf
/// format and the storage layout devices prove are specified in docs/contracts.md.
interface IUpdateRegistry {
    // ---------------------------------------------------------------- types

    /// @notice A firmware release as signed by the manufacturer (EIP-712 struct `Manifest`).
    /// @dev The release id is the EIP-712 struct hash of this manifest (see `releaseId`).
    struct Manifest {
        uint32 modelId;
        uint64 version;
        bytes32 bundleSha256;
        uint64 bundleSize;
        bytes bundleCid;
        bytes32 imageSha256;
        uint128 price;
        address paymentToken;
        bytes32 policyId;
        uint64 expiry;
        bytes32 metadataHash;
    }

    /// @notice A threshold approval: the manufacturer's full current signer set, its threshold, and signatures.
    /// @dev `signers` ascending, exactly as registered; `signatures` is the concatenation of 64-byte EIP-2098
    /// compact signatures (`r ‖ yParity<<255 | s`) ordered by ascending recovered signer address.
    struct Approval {
        address[] signers;
        uint8 threshold;
        bytes signatures;
    }

    /// @notice Stored manufacturer record.
    /// @dev slot +0: `signersHash`; slot +1: `operator` (bits 0..159), `nonce` (bits 160..223); slot +2: `payee`.
    struct Manufacturer {
        bytes32 signersHash;
        address operator;
        uint64 nonce;
        address payee;
    }

    /// @notice Stored model record (one slot).
    /// @dev bits 0..31 `manufacturerId`, 32..95 `latestVersion`, 96..159 `minVersion`.
    struct Model {
        uint32 manufacturerId;
        uint64 latestVersion;
        uint64 minVersion;
    }

    /// @notice Stored provisioning batch (two slots).
    /// @dev slot +0: `root`; slot +1: `manufacturerId` (bits 0..31), `firstIndex` (32..95), `count` (96..127).
    struct Batch {
        bytes32 root;
        uint32 manufacturerId;
        uint64 firstIndex;
        uint32 count;
    }

    /// @notice Lifecycle of a device index.
    enum DeviceStatus {
        Unclaimed,
        Active,
        Deactivated
    }

    /// @notice Stored device record (one slot, the word a device proves).
    /// @dev bits 0..159 `owner`, 160..191 `modelId`, 192..199 `status`.
    struct Device {
        address owner;
        uint32 modelId;
        DeviceStatus status;
    }

    /// @notice Stored release status (one slot, the word a device proves; key = release id).
    /// @dev bits 0..63 `version`, 64..95 `modelId`, 96..135 `publishedAt`, 136..175 `revokedAt` (0 = live),
    /// 176..191 `rolloutBps`.
    struct Release {
        uint64 version;
        uint32 modelId;
        uint40 publishedAt;
        uint40 revokedAt;
        uint16 rolloutBps;
    }

    /// @notice Sequence counters (one slot).
    struct Counters {
        uint32 manufacturers;
        uint32 models;
        uint64 batches;
        uint64 devices;
    }

    // ---------------------------------------------------------------- errors

    /// @notice The caller is not the manufacturer's operator.
    error UpdateRegistryNotOperator(uint32 manufacturerId, address caller);
    /// @notice No manufacturer has this id.
    error UpdateRegistryUnknownManufacturer(uint32 manufacturerId);
    /// @notice No model has this id.
    error UpdateRegistryUnknownModel(uint32 modelId);
    /// @notice No batch has this id.
    error UpdateRegistryUnknownBatch(uint64 batchId);
    /// @notice No release has this id.
    error UpdateRegistryUnknownRelease(bytes32 releaseId);
    /// @notice A signer set is empty, too large, or its threshold is 0 or above its size.
    error UpdateRegistryInvalidSignerSet(uint256 signerCount, uint256 threshold);
    /// @notice Signers must be strictly ascending non-zero addresses (no duplicates).
    error UpdateRegistrySignersNotAscending(uint256 index, address signer);
    /// @notice The approval's signer set or threshold is not the manufacturer's current one.
    error UpdateRegistrySignerSetMismatch(uint32 manufacturerId, bytes32 expected, bytes32 given);
    /// @notice An approval's `signers` or `signatures` does not lie inside the calldata (offset or length out of
    /// bounds). Values as read from the calldata, offsets relative to the approval.
    error UpdateRegistryApprovalOutOfBounds(
        uint256 signersOffset,
        uint256 signerCount,
        uint256 signaturesOffset,
        uint256 signaturesLength,
        uint256 calldataSize
    );
    /// @notice The signatures blob is not a whole number of 64-byte signatures.
    error UpdateRegistrySignatureLength(uint256 length);
    /// @notice Fewer signatures than the threshold.
    error UpdateRegistryNotEnoughSignatures(uint256 given, uint256 threshold);
    /// @notice A signature has a high `s` value (malleable form).
    error UpdateRegistrySignatureMalleable(uint256 index);
    /// @notice A signature recovers to no signer of the set, to the zero address, or out of ascending order.
    error UpdateRegistryInvalidSignature(uint256 index, address recovered);
    /// @notice A release's version must exceed the model's latest.
    error UpdateRegistryVersionNotIncreasing(uint32 modelId, uint64 latest, uint64 given);
    /// @notice A release's version is below the model's floor.
    error UpdateRegistryVersionBelowFloor(uint32 modelId, uint64 minVersion, uint64 given);
    /// @notice A new floor must exceed the current floor.
    error UpdateRegistryFloorNotIncreasing(uint32 modelId, uint64 current, uint64 given);
    /// @notice The manifest's expiry is not in the future.
    error UpdateRegistryExpired(uint64 expiry, uint256 timestamp);
    /// @notice The release is revoked.
    error UpdateRegistryReleaseRevoked(bytes32 releaseId);
    /// @notice A batch must have a non-zero root and count.
    error UpdateRegistryEmptyBatch();
    /// @notice The device index is outside the batch's index range.
    error UpdateRegistryDeviceNotInBatch(uint64 batchId, uint64 deviceIndex);
    /// @notice The Merkle proof does not lead to the batch root.
    error UpdateRegistryInvalidProof(uint64 batchId, uint64 deviceIndex);
    /// @notice The model belongs to another manufacturer than the batch.
    error UpdateRegistryModelManufacturerMismatch(uint32 modelId, uint32 manufacturerId);
    /// @notice The device was already claimed (or deactivated before being claimed).
    error UpdateRegistryDeviceNotClaimable(uint64 deviceIndex, DeviceStatus status);
    /// @notice The device's claim signature does not recover to the device address.
    error UpdateRegistryInvalidDeviceSignature(uint64 deviceIndex, address device, address recovered);
    /// @notice The caller (or the given owner) does not own the device.
    error UpdateRegistryNotDeviceOwner(uint64 deviceIndex, address owner, address account);
    /// @notice The device is not active.
    error UpdateRegistryDeviceInactive(uint64 deviceIndex, DeviceStatus status);
    /// @notice The device is of another model than the release.
    error UpdateRegistryDeviceModelMismatch(uint64 deviceIndex, uint32 deviceModel, uint32 releaseModel);
    /// @notice An address that must be set is zero.
    error UpdateRegistryZeroAddress();

    // ---------------------------------------------------------------- events

    /// @notice A manufacturer registered.
    event ManufacturerRegistered(
        uint32 indexed manufacturerId,
        address indexed operator,
        address payee,
        string name,
        address[] signers,
        uint8 threshold,
        string paramsCid
    );
    /// @notice A threshold of the previous signers installed a new signer set.
    event SignersRotated(uint32 indexed manufacturerId, uint64 nonce, address[] signers, uint8 threshold);
    /// @notice A threshold of the signers changed the operator and payee.
    event ManufacturerUpdated(uint32 indexed manufacturerId, uint64 nonce, address operator, address payee);
    /// @notice The operator published new CP-ABE public parameters.
    event ParamsCidSet(uint32 indexed manufacturerId, string paramsCid);
    /// @notice The operator defined a model.
    event ModelDefined(uint32 indexed modelId, uint32 indexed manufacturerId, uint64 minVersion, string name);
    /// @notice A threshold of the signers raised a model's version floor.
    event FloorRaised(uint32 indexed modelId, uint64 minVersion);
    /// @notice The operator provisioned a batch of devices (leaves listed at `leavesCid`).
    event DevicesProvisioned(
        uint64 indexed batchId,
        uint32 indexed manufacturerId,
        uint64 firstIndex,
        uint32 count,
        bytes32 root,
        string leavesCid
    );
    /// @notice A device was claimed by its first owner with the device's own signature.
    event DeviceClaimed(
        uint64 indexed deviceIndex, address indexed owner, address indexed device, uint32 modelId, uint64 batchId
    );
    /// @notice A device changed owner.
    event DeviceTransferred(uint64 indexed deviceIndex, address indexed from, address indexed to);
    /// @notice The manufacturer's operator changed a device's status.
    event DeviceStatusChanged(uint64 indexed deviceIndex, DeviceStatus status);
    /// @notice A threshold-signed release was published.
    /// @param signerMask bit i set = `signers[i]` of the current set signed.
    event ReleasePublished(
        bytes32 indexed releaseId, uint32 indexed modelId, uint64 indexed version, Manifest manifest, uint256 signerMask
    );
    /// @notice A release was revoked (`emergency`: by the operator, without signatures).
    event ReleaseRevoked(bytes32 indexed releaseId, uint32 indexed modelId, bool emergency, string reason);

    // ---------------------------------------------------------------- manufacturers

    /// @notice Registers a manufacturer (permissionless).
    /// @param name display name (event only).
    /// @param operator account for routine operations; zero means the caller.
    /// @param payee account paid by `UpdateMarket`; zero means the operator.
    /// @param signers the signer set, strictly ascending non-zero addresses, at most `MAX_SIGNERS`.
    /// @param threshold signatures needed, 1 ..= `signers.length`.
    /// @param paramsCid CID of the manufacturer's CP-ABE public parameters (event only).
    /// @return manufacturerId sequential id, from 1.
    function registerManufacturer(
        string calldata name,
        address operator,
        address payee,
        address[] calldata signers,
        uint8 threshold,
        string calldata paramsCid
    ) external returns (uint32 manufacturerId);

    /// @notice Replaces the signer set and threshold, approved by a threshold of the current signers.
    /// @dev EIP-712 `RotateSigners(uint32 manufacturerId,uint64 nonce,address[] signers,uint8 threshold)`.
    /// @param manufacturerId the manufacturer.
    /// @param newSigners the new set (rules of `registerManufacturer`).
    /// @param newThreshold the new threshold.
    /// @param approval the current set, its threshold and their signatures.
    function rotateSigners(
        uint32 manufacturerId,
        address[] calldata newSigners,
        uint8 newThreshold,
        Approval calldata approval
    ) external;

    /// @notice Replaces the operator and payee, approved by a threshold of the current signers.
    /// @dev EIP-712 `UpdateManufacturer(uint32 manufacturerId,uint64 nonce,address operator,address payee)`.
    /// @param manufacturerId the manufacturer.
    /// @param operator the new operator (non-zero).
    /// @param payee the new payee (non-zero).
    /// @param approval the current set, its threshold and their signatures.
    function updateManufacturer(uint32 manufacturerId, address operator, address payee, Approval calldata approval)
        external;

    /// @notice Publishes the CID of new CP-ABE public parameters (operator).
    /// @param manufacturerId the manufacturer.
    /// @param paramsCid the parameters' CID (event only).
    function setParamsCid(uint32 manufacturerId, string calldata paramsCid) external;

    // ---------------------------------------------------------------- models

    /// @notice Defines a model (product line) with an initial version floor (operator).
    /// @param manufacturerId the manufacturer.
    /// @param name display name (event only).
    /// @param minVersion the initial version floor.
    /// @return modelId sequential id, from 1, global across manufacturers.
    function defineModel(uint32 manufacturerId, string calldata name, uint64 minVersion)
        external
        returns (uint32 modelId);

    /// @notice Raises a model's version floor, approved by a threshold of the current signers.
    /// @dev EIP-712 `RaiseFloor(uint32 modelId,uint64 minVersion)`; replay-safe because the floor only rises.
    /// @param modelId the model.
    /// @param minVersion the new floor, above the current one.
    /// @param approval the current set, its threshold and their signatures.
    function raiseFloor(uint32 modelId, uint64 minVersion, Approval calldata approval) external;

    // ---------------------------------------------------------------- devices

    /// @notice Provisions `count` devices whose leaves form the Merkle tree `root` (operator).
    /// @dev Device indexes `firstIndex .. firstIndex + count - 1` are reserved for the batch.
    /// @param manufacturerId the manufacturer.
    /// @param root the Merkle root of the batch's leaves (non-zero).
    /// @param count the number of devices (non-zero).
    /// @param leavesCid CID of the leaf list (event only).
    /// @return batchId sequential id, from 1.
    /// @return firstIndex the global index of the batch's first device.
    function provisionDevices(uint32 manufacturerId, bytes32 root, uint32 count, string calldata leavesCid)
        external
        returns (uint64 batchId, uint64 firstIndex);

    /// @notice Claims a provisioned device for `owner`; anyone may submit, the device's key must have signed.
    /// @dev Leaf = keccak256(bytes.concat(keccak256(abi.encode(uint64 position, address device, uint32 modelId)))),
    /// with `position = deviceIndex - firstIndex` (the device's place in its batch),
    /// sorted-pair proof. Device signs EIP-712 `Claim(address owner,uint64 deviceIndex)`, 64-byte EIP-2098.
    /// @param batchId the device's batch.
    /// @param deviceIndex the device's global index (inside the batch's range).
    /// @param device the device's address (its key signs the claim).
    /// @param modelId the device's model (of the batch's manufacturer).
    /// @param owner the first owner (non-zero).
    /// @param proof the Merkle proof of the device's leaf.
    /// @param deviceSignature the device's 64-byte compact signature of the claim.
    function claimDevice(
        uint64 batchId,
        uint64 deviceIndex,
        address device,
        uint32 modelId,
        address owner,
        bytes32[] calldata proof,
        bytes calldata deviceSignature
    ) external;

    /// @notice Transfers a device to a new owner (current owner only).
    /// @param deviceIndex the device.
    /// @param to the new owner (non-zero).
    function transferDevice(uint64 deviceIndex, address to) external;

    /// @notice Deactivates (e.g. stolen) or reactivates a device of one of the manufacturer's batches (operator).
    /// @param batchId the device's batch.
    /// @param deviceIndex the device.
    /// @param active false to deactivate; true to reactivate (active if claimed, else unclaimed).
    function setDeviceActive(uint64 batchId, uint64 deviceIndex, bool active) external;

    // ---------------------------------------------------------------- releases

    /// @notice Publishes a release signed by a threshold of the model's manufacturer's signers. Anyone may submit.
    /// @param manifest the release; the signers signed its EIP-712 digest.
    /// @param approval the current set, its threshold and their signatures.
    /// @return releaseId the EIP-712 struct hash of the manifest.
    function publishRelease(Manifest calldata manifest, Approval calldata approval) external returns (bytes32 releaseId);

    /// @notice Revokes a release, approved by a threshold of the current signers.
    /// @dev EIP-712 `RevokeRelease(bytes32 releaseId,string reason)`.
    /// @param releaseId the live release.
    /// @param reason why (signed; event only).
    /// @param approval the current set, its threshold and their signatures.
    function revokeRelease(bytes32 releaseId, string calldata reason, Approval calldata approval) external;

    /// @notice Emergency revocation by the manufacturer's operator (no signatures; revocation is final).
    /// @param releaseId the live release.
    /// @param reason why (event only).
    function emergencyRevoke(bytes32 releaseId, string calldata reason) external;

    // ---------------------------------------------------------------- views

    /// @notice The manufacturer record.
    /// @param manufacturerId the manufacturer.
    /// @return record the stored record (zero if unknown).
    function manufacturer(uint32 manufacturerId) external view returns (Manufacturer memory record);
    /// @notice The model record.
    /// @param modelId the model.
    /// @return record the stored record (zero if unknown).
    function model(uint32 modelId) external view returns (Model memory record);
    /// @notice The batch record.
    /// @param batchId the batch.
    /// @return record the stored record (zero if unknown).
    function batch(uint64 batchId) external view returns (Batch memory record);
    /// @notice The device record (zero for unclaimed devices).
    /// @param deviceIndex the device.
    /// @return record the stored record.
    function device(uint64 deviceIndex) external view returns (Device memory record);
    /// @notice The release status (zero if unknown).
    /// @param releaseId the release.
    /// @return record the stored status word.
    function release(bytes32 releaseId) external view returns (Release memory record);
    /// @notice The sequence counters.
    /// @return record the counters.
    function counters() external view returns (Counters memory record);
    /// @notice The EIP-712 domain separator (recomputed if the chain id changed).
    /// @return separator the domain separator.
    function DOMAIN_SEPARATOR() external view returns (bytes32 separator);
    /// @notice The release id (EIP-712 struct hash) of a manifest.
    /// @param manifest the manifest.
    /// @return id its struct hash.
    function releaseId(Manifest calldata manifest) external pure returns (bytes32 id);
    /// @notice The signer-set hash stored for `signers` and `threshold`.
    /// @param signers the set as registered.
    /// @param threshold its threshold.
    /// @return hash keccak256(uint256(threshold) ‖ signers, each a 32-byte word).
    function signersHash(address[] calldata signers, uint8 threshold) external pure returns (bytes32 hash);
    /// @notice Reverts unless every device is claimed, of `modelId`, owned by `owner` (if non-zero) and, if
    /// `requireActive`, active.
    /// @dev Used by `UpdateMarket` in one call per purchase or refund.
    /// @param owner the owner every device must have, or zero for any owner.
    /// @param modelId the model every device must be of.
    /// @param requireActive whether every device must be active.
    /// @param deviceIndexes the devices.
    function checkDevices(address owner, uint32 modelId, bool requireActive, uint64[] calldata deviceIndexes)
        external
        view;
}
