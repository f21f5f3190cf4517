// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {UpdateRegistry} from "../../src/UpdateRegistry.sol";
import {IUpdateRegistry} from "../../src/interfaces/IUpdateRegistry.sol";
import {RawBytes} from "../raw/RawBytes.sol";
import {Vm} from "../utils/Vm.sol";

/// @notice Drives an UpdateRegistry with random publishes (random signer subsets, stale sets, random versions),
/// rotations and floor raises, and records what each successful publish was signed with. `raw` sends every
/// threshold action as raw, mutated calldata (forged approvals with throwaway keys, wrapped or wrong lengths,
/// moved offsets, truncation, extension) and counts any success not signed by a threshold of current signers.
contract RegistryHandler {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
    uint256 internal constant POOL = 6;
    bytes32 internal constant ROTATE_TYPEHASH =
        keccak256("RotateSigners(uint32 manufacturerId,uint64 nonce,address[] signers,uint8 threshold)");
    bytes32 internal constant RAISE_FLOOR_TYPEHASH = keccak256("RaiseFloor(uint32 modelId,uint64 minVersion)");
    bytes32 internal constant UPDATE_TYPEHASH =
        keccak256("UpdateManufacturer(uint32 manufacturerId,uint64 nonce,address operator,address payee)");
    bytes32 internal constant REVOKE_TYPEHASH = keccak256("RevokeRelease(bytes32 releaseId,string reason)");

    UpdateRegistry public immutable registry;
    uint32 public immutable mfId;
    uint32[2] public models;

    /// @dev The key pool, sorted by address; the manufacturer's set is always a subset of it.
    uint256[POOL] internal keys;
    address[POOL] internal addrs;

    /// @dev Ghost copy of the current set (bitmask over the pool) and threshold.
    uint256 public currentSet;
    uint256 public currentThreshold;
    uint256 internal previousSet;
    uint256 internal previousThreshold;

    /// @dev Every release id the handler tried to publish, and whether, when it was tried, at least the threshold
    /// of distinct members of the then-current set signed it.
    bytes32[] public attempted;
    mapping(bytes32 => bool) public validWhenTried;
    /// @dev Versions published per model, in order.
    mapping(uint32 => uint64[]) internal published;

    uint256 public publishes;
    uint256 public rotations;
    /// @dev Successful `updateManufacturer` calls (they bump the nonce like rotations).
    uint256 public updates;

    /// @dev Two keys outside the pool whose addresses sort above every pool address (an attacker's).
    uint256[2] internal throwaway;
    /// @dev Ghost copies of what only a threshold may change.
    address public ghostPayee;
    mapping(uint32 => uint64) public ghostFloor;
    mapping(bytes32 => bool) public ghostRevoked;
    bytes32[] public publishedIds;
    /// @dev Raw calls that succeeded without a threshold of distinct current signers (must stay 0), and all that
    /// succeeded / were sent.
    uint256 public unauthorised;
    uint256 public rawAccepted;
    uint256 public rawSent;

    constructor(UpdateRegistry registry_) {
        registry = registry_;
        for (uint256 i; i < POOL; ++i) {
            keys[i] = uint256(keccak256(abi.encode("pool", i))) % 1e70 + 1;
            addrs[i] = vm.addr(keys[i]);
        }
        for (uint256 i = 1; i < POOL; ++i) {
            for (uint256 j = i; j > 0 && addrs[j - 1] > addrs[j]; --j) {
                (addrs[j - 1], addrs[j]) = (addrs[j], addrs[j - 1]);
                (keys[j - 1], keys[j]) = (keys[j], keys[j - 1]);
            }
        }
        address top = addrs[POOL - 1];
        uint256 found;
        for (uint256 i; found < 2; ++i) {
            uint256 k = uint256(keccak256(abi.encode("throwaway", i))) % 1e70 + 1;
            if (vm.addr(k) > top && (found == 0 || vm.addr(k) > vm.addr(throwaway[0]))) throwaway[found++] = k;
        }
        currentSet = 0x7; // pool 0, 1, 2
        currentThreshold = 2;
        mfId = registry.registerManufacturer("inv", address(this), address(this), _set(currentSet), 2, "");
        models[0] = registry.defineModel(mfId, "a", 0);
        models[1] = registry.defineModel(mfId, "b", 3);
        ghostFloor[models[1]] = 3;
        ghostPayee = address(this);
    }

    // ---------------------------------------------------------------- actions

    function publish(uint256 modelSeed, uint256 versionStep, uint256 signBits, bool stale) external {
        uint32 modelId = models[modelSeed % 2];
        IUpdateRegistry.Model memory md = registry.model(modelId);
        uint64 version = md.latestVersion + uint64(versionStep % 4); // step 0 must fail
        if (version < md.minVersion && versionStep % 5 != 0) version = md.minVersion;
        IUpdateRegistry.Manifest memory m = IUpdateRegistry.Manifest({
            modelId: modelId,
            version: version,
            bundleSha256: keccak256(abi.encode(version)),
            bundleSize: 1,
            bundleCid: "cid",
            imageSha256: bytes32(0),
            price: 0,
            paymentToken: address(0),
            policyId: bytes32(0),
            expiry: uint64(block.timestamp + 1 days),
            metadataHash: bytes32(0)
        });
        bytes32 id = registry.releaseId(m);
        uint256 signing = signBits % (1 << POOL);
        bool useStale = stale && previousSet != 0;
        IUpdateRegistry.Approval memory a = _approval(
            id, useStale ? previousSet : currentSet, useStale ? previousThreshold : currentThreshold, signing
        );
        if (!validWhenTried[id]) {
            attempted.push(id);
            validWhenTried[id] = _popcount(signing & currentSet) >= currentThreshold;
        }
        try registry.publishRelease(m, a) {
            published[modelId].push(version);
            publishedIds.push(id);
            ++publishes;
        } catch {}
    }

    function rotate(uint256 newSetBits, uint256 thresholdSeed, uint256 signBits) external {
        uint256 next = newSetBits % (1 << POOL);
        if (next == 0) next = 1;
        uint256 n = _popcount(next);
        uint256 threshold = 1 + (thresholdSeed % n);
        uint256 signing = signBits % (1 << POOL);
        IUpdateRegistry.Manufacturer memory mf = registry.manufacturer(mfId);
        bytes32 h = keccak256(
            abi.encode(ROTATE_TYPEHASH, mfId, mf.nonce, keccak256(abi.encodePacked(_set(next))), uint8(threshold))
        );
        IUpdateRegistry.Approval memory a = _approval(h, currentSet, currentThreshold, signing);
        bool valid = _popcount(signing & currentSet) >= currentThreshold && (signing & ~currentSet) == 0;
        try registry.rotateSigners(mfId, _set(next), uint8(threshold), a) {
            if (!valid) ++unauthorised;
            (previousSet, previousThreshold) = (currentSet, currentThreshold);
            (currentSet, currentThreshold) = (next, threshold);
            ++rotations;
        } catch {}
    }

    function raiseFloor(uint256 modelSeed, uint256 step, uint256 signBits) external {
        uint32 modelId = models[modelSeed % 2];
        uint64 floor = registry.model(modelId).minVersion + uint64(step % 3);
        bytes32 h = keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, floor));
        uint256 signing = signBits % (1 << POOL);
        try registry.raiseFloor(modelId, floor, _approval(h, currentSet, currentThreshold, signing)) {
            if (_popcount(signing & currentSet) < currentThreshold) ++unauthorised;
            ghostFloor[modelId] = floor;
        } catch {}
    }

    /// @notice One threshold action (publish, rotate, update, raise floor, revoke) as raw calldata: signed by the
    /// pool keys in `signBits`, optionally `forge`d (the attacker's two throwaway keys appended to the set and the
    /// signatures), then mutated by `mutSeed`. A success must have been signed by a threshold of current signers.
    function raw(uint256 actionSeed, uint256 signBits, bool forge, uint256 mutSeed) external {
        uint256 action = actionSeed % 5;
        if (action == 4 && publishedIds.length == 0) action = 0;
        uint256 signing = signBits % (1 << POOL);
        bool authorised = _popcount(signing & currentSet) >= currentThreshold;
        (bytes memory cd, uint256 arg, bytes32 subject, uint256 next, uint256 nextThreshold) =
            _rawCall(action, signing, forge, mutSeed);
        cd = _rawMutate(cd, arg, mutSeed);
        ++rawSent;
        (bool ok,) = address(registry).call(cd);
        if (!ok) return;
        ++rawAccepted;
        if (!authorised) ++unauthorised;
        if (action == 0) {
            // A forged publish is recorded as tried without a threshold, so the release invariant sees it too.
            if (!validWhenTried[subject]) {
                attempted.push(subject);
                validWhenTried[subject] = authorised;
            }
            IUpdateRegistry.Release memory r = registry.release(subject);
            published[r.modelId].push(r.version);
            publishedIds.push(subject);
            ++publishes;
        } else if (action == 1) {
            (previousSet, previousThreshold) = (currentSet, currentThreshold);
            (currentSet, currentThreshold) = (next, nextThreshold);
            ++rotations;
        } else if (action == 2) {
            ghostPayee = address(uint160(uint256(subject)));
            ++updates;
        } else if (action == 3) {
            ghostFloor[uint32(uint256(subject))] = uint64(next);
        } else {
            ghostRevoked[subject] = true;
        }
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + (secs % 3 days));
    }

    // ---------------------------------------------------------------- raw calldata

    /// @dev Well-formed calldata of a threshold action; `arg` is the approval's head position, `subject` what it
    /// changes (release id, payee, model id), `next`/`nextThreshold` the rotated set or the new floor.
    function _rawCall(uint256 action, uint256 signing, bool forge, uint256 seed)
        internal
        view
        returns (bytes memory cd, uint256 arg, bytes32 subject, uint256 next, uint256 nextThreshold)
    {
        uint32 modelId = models[seed % 2];
        if (action == 0) {
            IUpdateRegistry.Model memory md = registry.model(modelId);
            uint64 version = md.latestVersion + 1;
            if (version < md.minVersion) version = md.minVersion;
            IUpdateRegistry.Manifest memory m = IUpdateRegistry.Manifest({
                modelId: modelId,
                version: version,
                bundleSha256: keccak256(abi.encode("raw", version)),
                bundleSize: 1,
                bundleCid: "raw-cid",
                imageSha256: bytes32(0),
                price: 0,
                paymentToken: address(0),
                policyId: bytes32(0),
                expiry: uint64(block.timestamp + 1 days),
                metadataHash: bytes32(0)
            });
            subject = registry.releaseId(m);
            cd = abi.encodeCall(registry.publishRelease, (m, _rawApproval(subject, signing, forge)));
            arg = 1;
        } else if (action == 1) {
            next = (seed >> 8) % (1 << POOL);
            if (next == 0) next = 1;
            nextThreshold = 1 + ((seed >> 16) % _popcount(next));
            bytes32 h = keccak256(
                abi.encode(
                    ROTATE_TYPEHASH,
                    mfId,
                    registry.manufacturer(mfId).nonce,
                    keccak256(abi.encodePacked(_set(next))),
                    uint8(nextThreshold)
                )
            );
            cd = abi.encodeCall(
                registry.rotateSigners, (mfId, _set(next), uint8(nextThreshold), _rawApproval(h, signing, forge))
            );
            arg = 3;
        } else if (action == 2) {
            address newPayee = address(uint160(0x1000 + (seed >> 8) % 7));
            subject = bytes32(uint256(uint160(newPayee)));
            bytes32 h = keccak256(
                abi.encode(UPDATE_TYPEHASH, mfId, registry.manufacturer(mfId).nonce, address(this), newPayee)
            );
            cd = abi.encodeCall(
                registry.updateManufacturer, (mfId, address(this), newPayee, _rawApproval(h, signing, forge))
            );
            arg = 3;
        } else if (action == 3) {
            next = registry.model(modelId).minVersion + 1;
            subject = bytes32(uint256(modelId));
            bytes32 h = keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, uint64(next)));
            cd = abi.encodeCall(registry.raiseFloor, (modelId, uint64(next), _rawApproval(h, signing, forge)));
            arg = 2;
        } else {
            subject = publishedIds[(seed >> 8) % publishedIds.length];
            bytes32 h = keccak256(abi.encode(REVOKE_TYPEHASH, subject, keccak256("raw")));
            cd = abi.encodeCall(registry.revokeRelease, (subject, "raw", _rawApproval(h, signing, forge)));
            arg = 2;
        }
    }

    /// @dev The current set and threshold signed by `signing`; forged: the throwaway pair appended to both.
    function _rawApproval(bytes32 structHash, uint256 signing, bool forge)
        internal
        view
        returns (IUpdateRegistry.Approval memory a)
    {
        a = _approval(structHash, currentSet, currentThreshold, signing);
        if (!forge) return a;
        address[] memory set = new address[](a.signers.length + 2);
        for (uint256 i; i < a.signers.length; ++i) {
            set[i] = a.signers[i];
        }
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", registry.DOMAIN_SEPARATOR(), structHash));
        for (uint256 i; i < 2; ++i) {
            set[a.signers.length + i] = vm.addr(throwaway[i]);
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(throwaway[i], digest);
            a.signatures =
                bytes.concat(a.signatures, abi.encodePacked(r, bytes32(uint256(s) | (uint256(v - 27) << 255))));
        }
        a.signers = set;
    }

    /// @dev One mutation: the signer count wrapped to the real set's size (the review's attack), moved above the
    /// real count, an approval head or length word set to an interesting value, truncation, extension, or none.
    function _rawMutate(bytes memory cd, uint256 arg, uint256 seed) internal view returns (bytes memory) {
        uint256 r = uint256(keccak256(abi.encode(seed, "raw")));
        uint256 approvalAt = 4 + RawBytes.word(cd, 4 + 32 * arg);
        uint256 setAt = approvalAt + RawBytes.word(cd, approvalAt);
        uint256 kind = r % 6;
        if (kind == 0) {
            RawBytes.setWord(cd, setAt, (1 << 251) + _popcount(currentSet));
        } else if (kind == 1) {
            RawBytes.setWord(cd, setAt, RawBytes.word(cd, setAt) + 1 + ((r >> 8) % 40));
        } else if (kind == 2) {
            uint256[5] memory at_ =
                [approvalAt, approvalAt + 32, approvalAt + 64, setAt, approvalAt + RawBytes.word(cd, approvalAt + 64)];
            uint256 pos = at_[(r >> 8) % 5];
            RawBytes.setWord(cd, pos, RawBytes.interesting(RawBytes.word(cd, pos), cd.length, r >> 16));
        } else if (kind == 3) {
            cd = RawBytes.truncate(cd, 1 + ((r >> 8) % (cd.length - approvalAt)));
        } else if (kind == 4) {
            cd = bytes.concat(cd, abi.encode(r, keccak256(abi.encode(r))));
        }
        return cd;
    }

    // ---------------------------------------------------------------- views for invariants

    function attemptedCount() external view returns (uint256) {
        return attempted.length;
    }

    function publishedVersions(uint32 modelId) external view returns (uint64[] memory) {
        return published[modelId];
    }

    function publishedCount() external view returns (uint256) {
        return publishedIds.length;
    }

    /// @dev The ghost signer set as the registry hashes it.
    function ghostSignersHash() external view returns (bytes32) {
        return keccak256(abi.encodePacked(currentThreshold, _set(currentSet)));
    }

    // ---------------------------------------------------------------- internal

    function _set(uint256 bits) internal view returns (address[] memory s) {
        s = new address[](_popcount(bits));
        uint256 k;
        for (uint256 i; i < POOL; ++i) {
            if (bits & (1 << i) != 0) s[k++] = addrs[i];
        }
    }

    /// @dev An approval over `set` claiming `threshold`, signed (ascending) by the pool keys in `signing`.
    function _approval(bytes32 structHash, uint256 set, uint256 threshold, uint256 signing)
        internal
        view
        returns (IUpdateRegistry.Approval memory a)
    {
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", registry.DOMAIN_SEPARATOR(), structHash));
        bytes memory sigs;
        for (uint256 i; i < POOL; ++i) {
            if (signing & (1 << i) == 0) continue;
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[i], digest);
            sigs = bytes.concat(sigs, abi.encodePacked(r, bytes32(uint256(s) | (uint256(v - 27) << 255))));
        }
        a = IUpdateRegistry.Approval({signers: _set(set), threshold: uint8(threshold), signatures: sigs});
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        for (; x != 0; x &= x - 1) {
            ++c;
        }
    }
}
