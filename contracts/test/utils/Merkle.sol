// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice Builds sorted-pair keccak Merkle trees (the scheme of OpenZeppelin's `MerkleProof`) for tests.
/// @dev Level by level; an odd last node is carried up unchanged.
library Merkle {
    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        bytes32[] memory level = leaves;
        while (level.length > 1) level = _up(level);
        return level[0];
    }

    function proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory out) {
        bytes32[] memory tmp = new bytes32[](256);
        uint256 len;
        bytes32[] memory level = leaves;
        while (level.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < level.length) tmp[len++] = level[sibling];
            level = _up(level);
            index >>= 1;
        }
        out = new bytes32[](len);
        for (uint256 i; i < len; ++i) {
            out[i] = tmp[i];
        }
    }

    function _up(bytes32[] memory level) private pure returns (bytes32[] memory next) {
        uint256 n = (level.length + 1) / 2;
        next = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            uint256 l = 2 * i;
            next[i] = l + 1 < level.length ? hashPair(level[l], level[l + 1]) : level[l];
        }
    }
}
