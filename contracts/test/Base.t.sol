// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {UpdateMarket} from "../src/UpdateMarket.sol";
import {UpdateRegistry} from "../src/UpdateRegistry.sol";
import {IUpdateRegistry} from "../src/interfaces/IUpdateRegistry.sol";
import {Merkle} from "./utils/Merkle.sol";
import {Test} from "./utils/Test.sol";

/// @notice Shared fixture: a registry and a market, a 2-of-3 manufacturer with one model, signing helpers.
abstract contract Base is Test {
    bytes32 internal constant ROTATE_TYPEHASH =
        keccak256("RotateSigners(uint32 manufacturerId,uint64 nonce,address[] signers,uint8 threshold)");
    bytes32 internal constant UPDATE_TYPEHASH =
        keccak256("UpdateManufacturer(uint32 manufacturerId,uint64 nonce,address operator,address payee)");
    bytes32 internal constant RAISE_FLOOR_TYPEHASH = keccak256("RaiseFloor(uint32 modelId,uint64 minVersion)");
    bytes32 internal constant REVOKE_TYPEHASH = keccak256("RevokeRelease(bytes32 releaseId,string reason)");
    bytes32 internal constant CLAIM_TYPEHASH = keccak256("Claim(address owner,uint64 deviceIndex)");
    uint256 internal constant SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141;
    uint256 internal constant REFUND_WINDOW = 7 days;

    UpdateRegistry internal registry;
    UpdateMarket internal market;

    /// @dev Signer keys sorted by address: keys[i] signs for signers[i].
    uint256[] internal keys;
    address[] internal signers;

    address internal operator = address(0x0FE8);
    address internal payee = address(0xFEE5);
    address internal alice = address(0xA11CE);
    address internal bob = address(0xB0B);

    uint32 internal mfId;
    uint32 internal modelId;

    function setUp() public virtual {
        vm.warp(1_750_000_000);
        registry = new UpdateRegistry();
        market = new UpdateMarket(registry, REFUND_WINDOW);
        (keys, signers) = _sortedKeys(0x5157, 3);
        vm.prank(operator);
        mfId = registry.registerManufacturer("Acme", operator, payee, signers, 2, "bafyparams");
        vm.prank(operator);
        modelId = registry.defineModel(mfId, "thermo-x", 1);
    }

    // ---------------------------------------------------------------- keys and signatures

    /// @dev `n` keys derived from `seed`, sorted by their addresses.
    function _sortedKeys(uint256 seed, uint256 n) internal pure returns (uint256[] memory ks, address[] memory as_) {
        ks = new uint256[](n);
        as_ = new address[](n);
        for (uint256 i; i < n; ++i) {
            ks[i] = uint256(keccak256(abi.encode(seed, i))) % (SECP256K1_N - 1) + 1;
            as_[i] = vm.addr(ks[i]);
        }
        for (uint256 i = 1; i < n; ++i) {
            for (uint256 j = i; j > 0 && as_[j - 1] > as_[j]; --j) {
                (as_[j - 1], as_[j]) = (as_[j], as_[j - 1]);
                (ks[j - 1], ks[j]) = (ks[j], ks[j - 1]);
            }
        }
    }

    function _digest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", registry.DOMAIN_SEPARATOR(), structHash));
    }

    /// @dev 64-byte EIP-2098 compact signature.
    function _signCompact(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
    }

    /// @dev Approval by the signers at positions `which` (ascending) of the current fixture set.
    function _approval(bytes32 structHash, uint256[] memory which)
        internal
        view
        returns (IUpdateRegistry.Approval memory a)
    {
        return _approvalBy(structHash, keys, signers, 2, which);
    }

    function _approvalBy(
        bytes32 structHash,
        uint256[] memory ks,
        address[] memory set,
        uint8 threshold,
        uint256[] memory which
    ) internal view returns (IUpdateRegistry.Approval memory a) {
        bytes32 digest = _digest(structHash);
        bytes memory sigs;
        for (uint256 i; i < which.length; ++i) {
            sigs = bytes.concat(sigs, _signCompact(ks[which[i]], digest));
        }
        a = IUpdateRegistry.Approval({signers: set, threshold: threshold, signatures: sigs});
    }

    /// @dev Approval by signers 0 and 2 (2 of 3).
    function _approve(bytes32 structHash) internal view returns (IUpdateRegistry.Approval memory) {
        return _approval(structHash, _pair(0, 2));
    }

    function _pair(uint256 a, uint256 b) internal pure returns (uint256[] memory w) {
        w = new uint256[](2);
        (w[0], w[1]) = (a, b);
    }

    function _one(uint256 a) internal pure returns (uint256[] memory w) {
        w = new uint256[](1);
        w[0] = a;
    }

    // ---------------------------------------------------------------- releases

    function _manifest(uint64 version, uint128 price, address token)
        internal
        view
        returns (IUpdateRegistry.Manifest memory)
    {
        return _manifestFor(modelId, version, price, token);
    }

    function _manifestFor(uint32 model, uint64 version, uint128 price, address token)
        internal
        view
        returns (IUpdateRegistry.Manifest memory)
    {
        return IUpdateRegistry.Manifest({
            modelId: model,
            version: version,
            bundleSha256: keccak256(abi.encode("bundle", model, version)),
            bundleSize: 1_048_576,
            bundleCid: hex"01551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            imageSha256: keccak256(abi.encode("image", model, version)),
            price: price,
            paymentToken: token,
            policyId: keccak256("model:thermo-x"),
            expiry: uint64(block.timestamp + 365 days),
            metadataHash: keccak256(abi.encode("meta", version))
        });
    }

    function _publish(IUpdateRegistry.Manifest memory m) internal returns (bytes32 id) {
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        id = registry.publishRelease(m, a);
    }

    // ---------------------------------------------------------------- devices

    /// @dev Device key of position `i` of a fixture batch.
    function _deviceKey(uint256 i) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode("device", i))) % (SECP256K1_N - 1) + 1;
    }

    /// @dev The leaf of the device at `position` in its batch.
    function _leaf(uint64 position, address dev, uint32 model) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(position, dev, model))));
    }

    /// @dev Leaves for `count` devices of `model` (positions 0 .. count - 1).
    function _leaves(uint256 count, uint32 model) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](count);
        for (uint256 i; i < count; ++i) {
            leaves[i] = _leaf(uint64(i), vm.addr(_deviceKey(i)), model);
        }
    }

    /// @dev Provisions `count` devices of the fixture model; returns the batch id and first index.
    function _provision(uint256 count) internal returns (uint64 batchId, uint64 first, bytes32[] memory leaves) {
        first = registry.counters().devices;
        leaves = _leaves(count, modelId);
        vm.prank(operator);
        (batchId,) = registry.provisionDevices(mfId, Merkle.root(leaves), uint32(count), "bafyleaves");
    }

    /// @dev Claims position `i` of a batch for `owner` with the device's signature.
    function _claim(uint64 batchId, uint64 first, bytes32[] memory leaves, uint256 i, address owner) internal {
        (uint64 index, address dev, bytes32[] memory proof, bytes memory sig) = _claimArgs(first, leaves, i, owner);
        registry.claimDevice(batchId, index, dev, modelId, owner, proof, sig);
    }

    /// @dev The arguments of a claim of position `i` (computed before an `expectRevert`).
    function _claimArgs(uint64 first, bytes32[] memory leaves, uint256 i, address owner)
        internal
        view
        returns (uint64 index, address dev, bytes32[] memory proof, bytes memory sig)
    {
        index = first + uint64(i);
        dev = vm.addr(_deviceKey(i));
        proof = Merkle.proof(leaves, i);
        sig = _signCompact(_deviceKey(i), _digest(keccak256(abi.encode(CLAIM_TYPEHASH, owner, index))));
    }
}
