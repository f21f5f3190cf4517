// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {UpdateRegistry} from "../../src/UpdateRegistry.sol";
import {IUpdateRegistry} from "../../src/interfaces/IUpdateRegistry.sol";
import {Vm} from "../utils/Vm.sol";

/// @notice Drives an UpdateRegistry with random publishes (random signer subsets, stale sets, random versions),
/// rotations and floor raises, and records what each successful publish was signed with.
contract RegistryHandler {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
    uint256 internal constant POOL = 6;
    bytes32 internal constant ROTATE_TYPEHASH =
        keccak256("RotateSigners(uint32 manufacturerId,uint64 nonce,address[] signers,uint8 threshold)");
    bytes32 internal constant RAISE_FLOOR_TYPEHASH = keccak256("RaiseFloor(uint32 modelId,uint64 minVersion)");

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
        currentSet = 0x7; // pool 0, 1, 2
        currentThreshold = 2;
        mfId = registry.registerManufacturer("inv", address(this), address(this), _set(currentSet), 2, "");
        models[0] = registry.defineModel(mfId, "a", 0);
        models[1] = registry.defineModel(mfId, "b", 3);
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
            require(valid, "RegistryHandler: rotation accepted without a valid approval");
            (previousSet, previousThreshold) = (currentSet, currentThreshold);
            (currentSet, currentThreshold) = (next, threshold);
            ++rotations;
        } catch {}
    }

    function raiseFloor(uint256 modelSeed, uint256 step, uint256 signBits) external {
        uint32 modelId = models[modelSeed % 2];
        uint64 floor = registry.model(modelId).minVersion + uint64(step % 3);
        bytes32 h = keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, floor));
        try registry.raiseFloor(modelId, floor, _approval(h, currentSet, currentThreshold, signBits % (1 << POOL))) {}
            catch {}
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + (secs % 3 days));
    }

    // ---------------------------------------------------------------- views for invariants

    function attemptedCount() external view returns (uint256) {
        return attempted.length;
    }

    function publishedVersions(uint32 modelId) external view returns (uint64[] memory) {
        return published[modelId];
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
