// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "../src/interfaces/IUpdateRegistry.sol";
import {Base} from "./Base.t.sol";

/// @notice Devices prove these words with eth_getProof: the slot formulas and bit layouts of docs/contracts.md are
/// the protocol. This test breaks if the layout changes.
contract StorageLayoutTest is Base {
    function _slot(uint256 key, uint256 mappingSlot) internal pure returns (bytes32) {
        return keccak256(abi.encode(key, mappingSlot));
    }

    function _load(address target, bytes32 slot) internal view returns (uint256) {
        return uint256(vm.load(target, slot));
    }

    function test_layout() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(3);
        _claim(b, first, leaves, 2, alice);
        IUpdateRegistry.Manifest memory m = _manifest(7, 0.5 ether, address(0));
        bytes32 id = _publish(m);
        vm.warp(block.timestamp + 60);
        vm.prank(operator);
        registry.emergencyRevoke(id, "test");
        IUpdateRegistry.Release memory r = registry.release(id);

        // counters at slot 0: manufacturers | models << 32 | batches << 64 | devices << 128
        assertEq(_load(address(registry), bytes32(0)), 1 | (1 << 32) | (1 << 64) | (3 << 128));

        // manufacturer: keccak(id . 1) + 0 signersHash, +1 operator | nonce << 160, +2 payee
        bytes32 ms = _slot(mfId, 1);
        assertEq(vm.load(address(registry), ms), keccak256(abi.encodePacked(uint256(2), signers)));
        assertEq(_load(address(registry), bytes32(uint256(ms) + 1)), uint256(uint160(operator)));
        assertEq(_load(address(registry), bytes32(uint256(ms) + 2)), uint256(uint160(payee)));

        // model: keccak(id . 2) = manufacturerId | latestVersion << 32 | minVersion << 96
        assertEq(_load(address(registry), _slot(modelId, 2)), uint256(mfId) | (7 << 32) | (1 << 96));

        // batch: keccak(id . 3) + 0 root, +1 manufacturerId | firstIndex << 32 | count << 96
        bytes32 bs = _slot(b, 3);
        assertEq(_load(address(registry), bytes32(uint256(bs) + 1)), uint256(mfId) | (uint256(first) << 32) | (3 << 96));

        // device: keccak(index . 4) = owner | modelId << 160 | status << 192
        assertEq(
            _load(address(registry), _slot(first + 2, 4)),
            uint256(uint160(alice)) | (uint256(modelId) << 160) | (1 << 192)
        );

        // release: keccak(id . 5) = version | modelId << 64 | publishedAt << 96 | revokedAt << 136 | rolloutBps << 176
        uint256 word = _load(address(registry), keccak256(abi.encode(id, uint256(5))));
        assertEq(
            word,
            7 | (uint256(modelId) << 64) | (uint256(r.publishedAt) << 96) | (uint256(r.revokedAt) << 136)
                | (uint256(10_000) << 176)
        );
        assertTrue(r.revokedAt == r.publishedAt + 60);
    }

    function test_marketLayout() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(3);
        _claim(b, first, leaves, 2, alice);
        IUpdateRegistry.Manifest memory m = _manifest(1, 1 ether, address(0));
        bytes32 id = _publish(m);
        uint64[] memory idx = new uint64[](1);
        idx[0] = first + 2;
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        market.purchase{value: 1 ether}(m, idx);

        // entitlement: keccak(word . keccak(id . 0)), bit index & 255
        bytes32 inner = keccak256(abi.encode(id, uint256(0)));
        uint256 word = _load(address(market), keccak256(abi.encode(uint256(idx[0] >> 8), inner)));
        assertEq(word, 1 << (idx[0] & 255));
        // escrow: keccak(id . 1)
        assertEq(_load(address(market), keccak256(abi.encode(id, uint256(1)))), 1 ether);
    }
}
