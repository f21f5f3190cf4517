// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "./interfaces/IUpdateRegistry.sol";
import {ManifestHash} from "./libraries/ManifestHash.sol";
import {Signatures} from "./libraries/Signatures.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title UpdateRegistry
/// @notice Holds the authority of OTA Ledger: who may publish for which devices, what was published, and which
/// devices exist and who owns them. Security-relevant changes need EIP-712 signatures from a threshold of the
/// manufacturer's current signers; routine operations are done by the manufacturer's operator.
/// @dev Storage is the protocol: devices verify `_devices` and `_releases` words with storage proofs, so the layout
/// (docs/contracts.md) must never change. Only hashes and packed status words are stored; full data is in events.
contract UpdateRegistry is IUpdateRegistry {
    // ---------------------------------------------------------------- storage (slot order is part of the protocol)

    /// @dev slot 0: sequence counters.
    Counters internal _counters;
    /// @dev slot 1: manufacturer id => record.
    mapping(uint32 manufacturerId => Manufacturer) internal _manufacturers;
    /// @dev slot 2: model id => record.
    mapping(uint32 modelId => Model) internal _models;
    /// @dev slot 3: batch id => record.
    mapping(uint64 batchId => Batch) internal _batches;
    /// @dev slot 4: device index => record.
    mapping(uint64 deviceIndex => Device) internal _devices;
    /// @dev slot 5: release id => status.
    mapping(bytes32 releaseId => Release) internal _releases;

    // ---------------------------------------------------------------- constants

    /// @notice Largest signer set (bit i of a release's `signerMask` stands for signer i).
    uint256 public constant MAX_SIGNERS = 32;
    /// @notice Rollout fraction of a new release in basis points (phased rollouts are reserved for later).
    uint16 public constant FULL_ROLLOUT_BPS = 10_000;

    bytes32 internal constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant _NAME_HASH = keccak256("OTA Ledger UpdateRegistry");
    bytes32 internal constant _VERSION_HASH = keccak256("1");
    bytes32 internal constant _ROTATE_TYPEHASH =
        keccak256("RotateSigners(uint32 manufacturerId,uint64 nonce,address[] signers,uint8 threshold)");
    bytes32 internal constant _UPDATE_TYPEHASH =
        keccak256("UpdateManufacturer(uint32 manufacturerId,uint64 nonce,address operator,address payee)");
    bytes32 internal constant _RAISE_FLOOR_TYPEHASH = keccak256("RaiseFloor(uint32 modelId,uint64 minVersion)");
    bytes32 internal constant _REVOKE_TYPEHASH = keccak256("RevokeRelease(bytes32 releaseId,string reason)");
    bytes32 internal constant _CLAIM_TYPEHASH = keccak256("Claim(address owner,uint64 deviceIndex)");

    /// @dev Signatures.HALF_ORDER and Signatures.S_MASK, repeated for inline assembly.
    uint256 internal constant _HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    uint256 internal constant _S_MASK = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;

    bytes32 internal immutable _CACHED_DOMAIN_SEPARATOR;
    uint256 internal immutable _CACHED_CHAIN_ID;

    constructor() {
        _CACHED_CHAIN_ID = block.chainid;
        _CACHED_DOMAIN_SEPARATOR = _buildDomainSeparator();
    }

    // ---------------------------------------------------------------- manufacturers

    /// @inheritdoc IUpdateRegistry
    function registerManufacturer(
        string calldata name,
        address operator,
        address payee,
        address[] calldata signers,
        uint8 threshold,
        string calldata paramsCid
    ) external returns (uint32 manufacturerId) {
        _checkSignerSet(signers, threshold);
        if (operator == address(0)) operator = msg.sender;
        if (payee == address(0)) payee = operator;
        manufacturerId = ++_counters.manufacturers;
        _manufacturers[manufacturerId] =
            Manufacturer({signersHash: _signersHash(signers, threshold), operator: operator, nonce: 0, payee: payee});
        emit ManufacturerRegistered(manufacturerId, operator, payee, name, signers, threshold, paramsCid);
    }

    /// @inheritdoc IUpdateRegistry
    function rotateSigners(
        uint32 manufacturerId,
        address[] calldata newSigners,
        uint8 newThreshold,
        Approval calldata approval
    ) external {
        _checkSignerSet(newSigners, newThreshold);
        Manufacturer storage mf = _manufacturers[manufacturerId];
        bytes32 current = mf.signersHash;
        if (current == bytes32(0)) revert UpdateRegistryUnknownManufacturer(manufacturerId);
        uint64 nonce = mf.nonce;
        bytes32 structHash = keccak256(
            abi.encode(_ROTATE_TYPEHASH, manufacturerId, nonce, keccak256(abi.encodePacked(newSigners)), newThreshold)
        );
        _verifyApproval(manufacturerId, current, structHash, approval);
        mf.signersHash = _signersHash(newSigners, newThreshold);
        unchecked {
            mf.nonce = nonce + 1;
        }
        emit SignersRotated(manufacturerId, nonce, newSigners, newThreshold);
    }

    /// @inheritdoc IUpdateRegistry
    function updateManufacturer(uint32 manufacturerId, address operator, address payee, Approval calldata approval)
        external
    {
        if (operator == address(0) || payee == address(0)) revert UpdateRegistryZeroAddress();
        Manufacturer storage mf = _manufacturers[manufacturerId];
        bytes32 current = mf.signersHash;
        if (current == bytes32(0)) revert UpdateRegistryUnknownManufacturer(manufacturerId);
        uint64 nonce = mf.nonce;
        bytes32 structHash = keccak256(abi.encode(_UPDATE_TYPEHASH, manufacturerId, nonce, operator, payee));
        _verifyApproval(manufacturerId, current, structHash, approval);
        mf.operator = operator;
        unchecked {
            mf.nonce = nonce + 1;
        }
        mf.payee = payee;
        emit ManufacturerUpdated(manufacturerId, nonce, operator, payee);
    }

    /// @inheritdoc IUpdateRegistry
    function setParamsCid(uint32 manufacturerId, string calldata paramsCid) external {
        _onlyOperator(manufacturerId);
        emit ParamsCidSet(manufacturerId, paramsCid);
    }

    // ---------------------------------------------------------------- models

    /// @inheritdoc IUpdateRegistry
    function defineModel(uint32 manufacturerId, string calldata name, uint64 minVersion)
        external
        returns (uint32 modelId)
    {
        _onlyOperator(manufacturerId);
        modelId = ++_counters.models;
        _models[modelId] = Model({manufacturerId: manufacturerId, latestVersion: 0, minVersion: minVersion});
        emit ModelDefined(modelId, manufacturerId, minVersion, name);
    }

    /// @inheritdoc IUpdateRegistry
    function raiseFloor(uint32 modelId, uint64 minVersion, Approval calldata approval) external {
        Model storage md = _models[modelId];
        uint32 manufacturerId = md.manufacturerId;
        if (manufacturerId == 0) revert UpdateRegistryUnknownModel(modelId);
        uint64 current = md.minVersion;
        if (minVersion <= current) revert UpdateRegistryFloorNotIncreasing(modelId, current, minVersion);
        bytes32 structHash = keccak256(abi.encode(_RAISE_FLOOR_TYPEHASH, modelId, minVersion));
        _verifyApproval(manufacturerId, _manufacturers[manufacturerId].signersHash, structHash, approval);
        md.minVersion = minVersion;
        emit FloorRaised(modelId, minVersion);
    }

    // ---------------------------------------------------------------- devices

    /// @inheritdoc IUpdateRegistry
    function provisionDevices(uint32 manufacturerId, bytes32 root, uint32 count, string calldata leavesCid)
        external
        returns (uint64 batchId, uint64 firstIndex)
    {
        _onlyOperator(manufacturerId);
        if (root == bytes32(0) || count == 0) revert UpdateRegistryEmptyBatch();
        Counters memory c = _counters;
        unchecked {
            // 2^64 batches or device indexes cannot be reached: each batch costs gas and adds at most 2^32 devices.
            batchId = ++c.batches;
            firstIndex = c.devices;
            c.devices = firstIndex + count;
        }
        _counters = c;
        _batches[batchId] = Batch({root: root, manufacturerId: manufacturerId, firstIndex: firstIndex, count: count});
        emit DevicesProvisioned(batchId, manufacturerId, firstIndex, count, root, leavesCid);
    }

    /// @inheritdoc IUpdateRegistry
    function claimDevice(
        uint64 batchId,
        uint64 deviceIndex,
        address device_,
        uint32 modelId,
        address owner,
        bytes32[] calldata proof,
        bytes calldata deviceSignature
    ) external {
        if (owner == address(0)) revert UpdateRegistryZeroAddress();
        Batch storage b = _batches[batchId];
        bytes32 root = b.root;
        if (root == bytes32(0)) revert UpdateRegistryUnknownBatch(batchId);
        uint64 position = _checkInBatch(b, batchId, deviceIndex);
        uint32 manufacturerId = b.manufacturerId;
        if (_models[modelId].manufacturerId != manufacturerId) {
            revert UpdateRegistryModelManufacturerMismatch(modelId, manufacturerId);
        }
        Device storage d = _devices[deviceIndex];
        DeviceStatus status = d.status;
        if (status != DeviceStatus.Unclaimed) revert UpdateRegistryDeviceNotClaimable(deviceIndex, status);
        // The leaf names the device's position in its batch, not its global index: a batch's tree can be built
        // before the transaction that assigns its index range lands, whatever other batches land first.
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(position, device_, modelId))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert UpdateRegistryInvalidProof(batchId, deviceIndex);
        address recovered = _recoverOne(keccak256(abi.encode(_CLAIM_TYPEHASH, owner, deviceIndex)), deviceSignature);
        if (recovered != device_ || recovered == address(0)) {
            revert UpdateRegistryInvalidDeviceSignature(deviceIndex, device_, recovered);
        }
        _devices[deviceIndex] = Device({owner: owner, modelId: modelId, status: DeviceStatus.Active});
        emit DeviceClaimed(deviceIndex, owner, device_, modelId, batchId);
    }

    /// @inheritdoc IUpdateRegistry
    function transferDevice(uint64 deviceIndex, address to) external {
        if (to == address(0)) revert UpdateRegistryZeroAddress();
        Device storage d = _devices[deviceIndex];
        address owner = d.owner;
        if (owner != msg.sender || owner == address(0)) {
            revert UpdateRegistryNotDeviceOwner(deviceIndex, owner, msg.sender);
        }
        d.owner = to;
        emit DeviceTransferred(deviceIndex, owner, to);
    }

    /// @inheritdoc IUpdateRegistry
    function setDeviceActive(uint64 batchId, uint64 deviceIndex, bool active) external {
        Batch storage b = _batches[batchId];
        if (b.root == bytes32(0)) revert UpdateRegistryUnknownBatch(batchId);
        _onlyOperator(b.manufacturerId);
        _checkInBatch(b, batchId, deviceIndex);
        Device storage d = _devices[deviceIndex];
        DeviceStatus status;
        if (!active) status = DeviceStatus.Deactivated;
        else if (d.owner != address(0)) status = DeviceStatus.Active;
        else status = DeviceStatus.Unclaimed;
        d.status = status;
        emit DeviceStatusChanged(deviceIndex, status);
    }

    // ---------------------------------------------------------------- releases

    /// @inheritdoc IUpdateRegistry
    function publishRelease(Manifest calldata manifest, Approval calldata approval) external returns (bytes32 id) {
        // The hot path of the protocol, written for gas: the hash validates every manifest field and bounds the
        // `bundleCid` offset and length, so the fields are then read raw (the 11 head words are inside the
        // calldata: the ABI decoder checks that); the model word and the release word are read and written as
        // packed words (layouts in IUpdateRegistry.Model and IUpdateRegistry.Release).
        uint256 cid;
        uint256 cidLen;
        (id, cid, cidLen) = ManifestHash.hashWithCid(manifest);
        uint32 modelId;
        uint64 version;
        uint64 expiry;
        uint256 modelSlot;
        uint256 modelWord;
        assembly ("memory-safe") {
            modelId := calldataload(manifest)
            version := calldataload(add(manifest, 0x20))
            expiry := calldataload(add(manifest, 0x120))
            mstore(0x00, modelId)
            mstore(0x20, _models.slot)
            modelSlot := keccak256(0x00, 0x40)
            modelWord := sload(modelSlot)
        }
        // Unpacking the model word (bits 0..31, 32..95, 96..159): truncation is the point.
        // forge-lint: disable-next-line(unsafe-typecast)
        uint32 manufacturerId = uint32(modelWord);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 latest = uint64(modelWord >> 32);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 minVersion = uint64(modelWord >> 96);
        if (manufacturerId == 0) revert UpdateRegistryUnknownModel(modelId);
        if (version <= latest) revert UpdateRegistryVersionNotIncreasing(modelId, latest, version);
        if (version < minVersion) revert UpdateRegistryVersionBelowFloor(modelId, minVersion, version);
        // forge-lint: disable-next-line(block-timestamp)
        if (expiry <= block.timestamp) revert UpdateRegistryExpired(expiry, block.timestamp);
        uint256 signerMask = _verifyApproval(manufacturerId, _manufacturers[manufacturerId].signersHash, id, approval);
        // A manifest cannot be published twice: its version is now the model's latest.
        assembly ("memory-safe") {
            sstore(modelSlot, or(and(modelWord, not(shl(32, 0xffffffffffffffff))), shl(32, version)))
            mstore(0x00, id)
            mstore(0x20, _releases.slot)
            sstore(
                keccak256(0x00, 0x40),
                or(or(version, shl(64, modelId)), or(shl(96, timestamp()), shl(176, FULL_ROLLOUT_BPS)))
            )
        }
        _emitReleasePublished(id, modelId, version, manifest, cid, cidLen, signerMask);
    }

    /// @inheritdoc IUpdateRegistry
    function revokeRelease(bytes32 releaseId_, string calldata reason, Approval calldata approval) external {
        (Release storage r, uint32 modelId, uint32 manufacturerId) = _liveRelease(releaseId_);
        bytes32 structHash = keccak256(abi.encode(_REVOKE_TYPEHASH, releaseId_, keccak256(bytes(reason))));
        _verifyApproval(manufacturerId, _manufacturers[manufacturerId].signersHash, structHash, approval);
        r.revokedAt = uint40(block.timestamp);
        emit ReleaseRevoked(releaseId_, modelId, false, reason);
    }

    /// @inheritdoc IUpdateRegistry
    function emergencyRevoke(bytes32 releaseId_, string calldata reason) external {
        (Release storage r, uint32 modelId, uint32 manufacturerId) = _liveRelease(releaseId_);
        _onlyOperator(manufacturerId);
        r.revokedAt = uint40(block.timestamp);
        emit ReleaseRevoked(releaseId_, modelId, true, reason);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IUpdateRegistry
    function manufacturer(uint32 manufacturerId) external view returns (Manufacturer memory) {
        return _manufacturers[manufacturerId];
    }

    /// @inheritdoc IUpdateRegistry
    function model(uint32 modelId) external view returns (Model memory) {
        return _models[modelId];
    }

    /// @inheritdoc IUpdateRegistry
    function batch(uint64 batchId) external view returns (Batch memory) {
        return _batches[batchId];
    }

    /// @inheritdoc IUpdateRegistry
    function device(uint64 deviceIndex) external view returns (Device memory) {
        return _devices[deviceIndex];
    }

    /// @inheritdoc IUpdateRegistry
    function release(bytes32 releaseId_) external view returns (Release memory) {
        return _releases[releaseId_];
    }

    /// @inheritdoc IUpdateRegistry
    function counters() external view returns (Counters memory) {
        return _counters;
    }

    /// @inheritdoc IUpdateRegistry
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @inheritdoc IUpdateRegistry
    function releaseId(Manifest calldata manifest) external pure returns (bytes32) {
        return ManifestHash.hash(manifest);
    }

    /// @inheritdoc IUpdateRegistry
    function signersHash(address[] calldata signers, uint8 threshold) external pure returns (bytes32) {
        return _signersHash(signers, threshold);
    }

    /// @inheritdoc IUpdateRegistry
    function checkDevices(address owner, uint32 modelId, bool requireActive, uint64[] calldata deviceIndexes)
        external
        view
    {
        uint256 n = deviceIndexes.length;
        for (uint256 i; i < n;) {
            uint64 index = deviceIndexes[i];
            Device memory d = _devices[index];
            if (d.owner == address(0) || (owner != address(0) && d.owner != owner)) {
                revert UpdateRegistryNotDeviceOwner(index, d.owner, owner);
            }
            if (d.modelId != modelId) revert UpdateRegistryDeviceModelMismatch(index, d.modelId, modelId);
            if (requireActive && d.status != DeviceStatus.Active) revert UpdateRegistryDeviceInactive(index, d.status);
            unchecked {
                ++i;
            }
        }
    }

    // ---------------------------------------------------------------- internal

    /// @dev Reverts unless `signers` is a non-empty, strictly ascending list of at most MAX_SIGNERS non-zero
    /// addresses and 1 <= threshold <= signers.length.
    function _checkSignerSet(address[] calldata signers, uint256 threshold) internal pure {
        uint256 n = signers.length;
        if (n == 0 || n > MAX_SIGNERS || threshold == 0 || threshold > n) {
            revert UpdateRegistryInvalidSignerSet(n, threshold);
        }
        address prev = address(0);
        for (uint256 i; i < n;) {
            address s = signers[i];
            if (s <= prev) revert UpdateRegistrySignersNotAscending(i, s);
            prev = s;
            unchecked {
                ++i;
            }
        }
    }

    /// @dev keccak256(uint256(threshold) ‖ signers[0] ‖ … ‖ signers[n-1]), each a 32-byte word.
    function _signersHash(address[] calldata signers, uint256 threshold) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, threshold)
            let len := shl(5, signers.length)
            calldatacopy(add(p, 0x20), signers.offset, len)
            h := keccak256(p, add(len, 0x20))
        }
    }

    /// @dev Verifies that at least the threshold of the manufacturer's current signers signed the EIP-712 digest
    /// of `structHash`. The approval's set must hash to `current`; signatures must recover to strictly ascending
    /// members of the set (which rules out duplicates and the zero address).
    /// @return signerMask bit i set = `approval.signers[i]` signed.
    function _verifyApproval(uint32 manufacturerId, bytes32 current, bytes32 structHash, Approval calldata approval)
        internal
        view
        returns (uint256 signerMask)
    {
        // Decoded by hand (gas: docs/benchmarks.md), every offset and length bounded before it is used. Nothing
        // may be assumed about a word read from calldata: without these bounds a signer count of 2^251 + 3 made
        // `shl(5, n)` wrap to 96, so the set hash covered three real signers while the membership walk ran on
        // into words the caller appended (docs/security.md, "Hand-decoded calldata").
        // The approval's three head words lie inside the calldata: the ABI decoder of the external function
        // checks that before the body runs.
        uint256 set;
        uint256 n;
        uint256 threshold;
        uint256 sigs;
        uint256 len;
        bool malformed;
        bytes32 given;
        assembly ("memory-safe") {
            let end := calldatasize()
            let setRel := calldataload(approval)
            let sigsRel := calldataload(add(approval, 0x40))
            threshold := calldataload(add(approval, 0x20))
            set := add(add(approval, setRel), 0x20)
            sigs := add(add(approval, sigsRel), 0x20)
            // Reading a length word is harmless wherever it points (past the end reads zero); using it is not.
            n := calldataload(sub(set, 0x20))
            len := calldataload(sub(sigs, 0x20))
            // Offsets and lengths at most `end` (< 2^32 in practice) and n <= MAX_SIGNERS: then the sums below
            // cannot wrap, and both arrays (length words included) must end inside the calldata.
            malformed := or(or(gt(setRel, end), gt(sigsRel, end)), or(gt(n, MAX_SIGNERS), gt(len, end)))
            if iszero(malformed) {
                malformed := or(gt(add(set, shl(5, n)), end), gt(add(sigs, len), end))
                if iszero(malformed) {
                    let p := mload(0x40)
                    mstore(p, threshold)
                    calldatacopy(add(p, 0x20), set, shl(5, n))
                    given := keccak256(p, add(shl(5, n), 0x20))
                }
            }
        }
        if (malformed) _revertMalformedApproval(approval);
        if (given != current) revert UpdateRegistrySignerSetMismatch(manufacturerId, current, given);
        if (len & 63 != 0) revert UpdateRegistrySignatureLength(len);
        uint256 count = len >> 6;
        if (count < threshold) revert UpdateRegistryNotEnoughSignatures(count, threshold);
        bytes32 digest = Signatures.typedDataDigest(_domainSeparator(), structHash);
        uint256 failure; // 1: malleable signature, 2: signer not an ascending member of the set
        uint256 failedAt;
        uint256 failedSigner;
        assembly ("memory-safe") {
            let p := mload(0x40)
            let j := 0
            let prev := 0
            for { let k := 0 } lt(k, count) { k := add(k, 1) } {
                let o := add(sigs, shl(6, k))
                let vs := calldataload(add(o, 0x20))
                let s := and(vs, _S_MASK)
                if gt(s, _HALF_ORDER) {
                    failure := 1
                    failedAt := k
                    break
                }
                mstore(p, digest)
                mstore(add(p, 0x20), add(27, shr(255, vs)))
                mstore(add(p, 0x40), calldataload(o))
                mstore(add(p, 0x60), s)
                let ok := staticcall(gas(), 1, p, 0x80, p, 0x20)
                let signer := mul(mload(p), and(ok, eq(returndatasize(), 0x20)))
                // Recovered signers must ascend (no duplicates, never zero). The set ascends too (checked at
                // registration, bound by the hash), so one forward walk finds every member.
                for {} and(lt(j, n), lt(calldataload(add(set, shl(5, j))), signer)) { j := add(j, 1) } {}
                if iszero(and(gt(signer, prev), and(lt(j, n), eq(calldataload(add(set, shl(5, j))), signer)))) {
                    failure := 2
                    failedAt := k
                    failedSigner := signer
                    break
                }
                // Yul shl(shift, value): this is 1 << j (slither's incorrect-shift is a false positive here).
                // slither-disable-next-line incorrect-shift
                signerMask := or(signerMask, shl(j, 1))
                j := add(j, 1)
                prev := signer
            }
        }
        if (failure == 1) revert UpdateRegistrySignatureMalleable(failedAt);
        // `failedSigner` is an ecrecover result, an address-sized word.
        // forge-lint: disable-next-line(unsafe-typecast)
        if (failure == 2) revert UpdateRegistryInvalidSignature(failedAt, address(uint160(failedSigner)));
    }

    /// @dev Reverts for an approval `_verifyApproval` found malformed: too many signers if the signer count word
    /// itself lies inside the calldata, else the offsets and lengths (as read) that do not fit.
    function _revertMalformedApproval(Approval calldata approval) internal pure {
        uint256 setRel;
        uint256 n;
        uint256 threshold;
        uint256 sigsRel;
        uint256 len;
        bool countInside;
        assembly ("memory-safe") {
            setRel := calldataload(approval)
            sigsRel := calldataload(add(approval, 0x40))
            threshold := calldataload(add(approval, 0x20))
            countInside := iszero(or(gt(setRel, calldatasize()), gt(add(add(approval, setRel), 0x20), calldatasize())))
            n := calldataload(add(approval, setRel))
            len := calldataload(add(approval, sigsRel))
        }
        if (countInside && n > MAX_SIGNERS) revert UpdateRegistryInvalidSignerSet(n, threshold);
        revert UpdateRegistryApprovalOutOfBounds(setRel, n, sigsRel, len, msg.data.length);
    }

    /// @dev Emits `ReleasePublished` by copying the manifest's ABI encoding from calldata (cheaper than re-encoding).
    /// The head is copied as is (every field was validated by `ManifestHash.hashWithCid`), the `bundleCid` offset
    /// is normalised and the CID's padding zeroed, so the data is canonical whatever the caller's encoding.
    /// @param cid calldata position of the CID bytes and `cidLen` their length, as bounded by `hashWithCid`.
    function _emitReleasePublished(
        bytes32 id,
        uint32 modelId,
        uint64 version,
        Manifest calldata manifest,
        uint256 cid,
        uint256 cidLen,
        uint256 signerMask
    ) internal {
        bytes32 topic0 = ReleasePublished.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, 0x40)
            mstore(add(p, 0x20), signerMask)
            let h := add(p, 0x40)
            calldatacopy(h, manifest, 0x160)
            mstore(add(h, 0x80), 0x160)
            mstore(add(h, 0x160), cidLen)
            let padded := and(add(cidLen, 31), not(31))
            mstore(add(add(h, 0x160), padded), 0)
            calldatacopy(add(h, 0x180), cid, cidLen)
            log4(p, add(0x1c0, padded), topic0, id, modelId, version)
        }
    }

    /// @dev Recovers the signer of the EIP-712 digest of `structHash` from one 64-byte compact signature.
    function _recoverOne(bytes32 structHash, bytes calldata signature) internal view returns (address signer) {
        if (signature.length != 64) return address(0);
        bytes32 r;
        bytes32 vs;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            vs := calldataload(add(signature.offset, 0x20))
        }
        (address recovered, bool highS) =
            Signatures.recover(Signatures.typedDataDigest(_domainSeparator(), structHash), r, vs);
        signer = highS ? address(0) : recovered;
    }

    /// @dev Reverts unless `msg.sender` is the manufacturer's operator.
    function _onlyOperator(uint32 manufacturerId) internal view {
        if (_manufacturers[manufacturerId].operator != msg.sender || msg.sender == address(0)) {
            revert UpdateRegistryNotOperator(manufacturerId, msg.sender);
        }
    }

    /// @dev Reverts unless `deviceIndex` is inside the batch's index range; returns its position in the batch.
    function _checkInBatch(Batch storage b, uint64 batchId, uint64 deviceIndex)
        internal
        view
        returns (uint64 position)
    {
        uint64 first = b.firstIndex;
        if (deviceIndex < first || deviceIndex - first >= b.count) {
            revert UpdateRegistryDeviceNotInBatch(batchId, deviceIndex);
        }
        unchecked {
            position = deviceIndex - first;
        }
    }

    /// @dev The release (must exist and not be revoked), its model and its manufacturer.
    function _liveRelease(bytes32 releaseId_)
        internal
        view
        returns (Release storage r, uint32 modelId, uint32 manufacturerId)
    {
        r = _releases[releaseId_];
        if (r.publishedAt == 0) revert UpdateRegistryUnknownRelease(releaseId_);
        if (r.revokedAt != 0) revert UpdateRegistryReleaseRevoked(releaseId_);
        modelId = r.modelId;
        manufacturerId = _models[modelId].manufacturerId;
    }

    /// @dev The cached domain separator, or a fresh one after a chain fork changed the chain id.
    function _domainSeparator() internal view returns (bytes32) {
        return block.chainid == _CACHED_CHAIN_ID ? _CACHED_DOMAIN_SEPARATOR : _buildDomainSeparator();
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, block.chainid, address(this)));
    }
}
