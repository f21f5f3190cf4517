// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice Word access to calldata held in `bytes` (positions count the 4-byte selector), and the values a
/// mutation writes, for tests that handle calldata as an attacker does.
library RawBytes {
    /// @dev The wrapped signer count of the review: `shl(5, n)` is 96 (three words) for this `n`.
    uint256 internal constant WRAPPED_THREE = (1 << 251) + 3;

    /// @dev Whether `cd` holds a whole word at `pos` (no overflow for any `pos`).
    function hasWord(bytes memory cd, uint256 pos) internal pure returns (bool) {
        return pos <= cd.length && cd.length - pos >= 32;
    }

    /// @dev Word at byte position `pos` of `cd` (zero-padded past the end, like `calldataload`).
    function word(bytes memory cd, uint256 pos) internal pure returns (uint256 w) {
        if (pos >= cd.length) return 0;
        for (uint256 i; i < 32; ++i) {
            w <<= 8;
            if (i < cd.length - pos) w |= uint8(cd[pos + i]);
        }
    }

    /// @dev Overwrites the word at byte position `pos` of `cd` (which must hold it).
    function setWord(bytes memory cd, uint256 pos, uint256 value) internal pure {
        require(hasWord(cd, pos), "RawBytes: word outside the bytes");
        assembly ("memory-safe") {
            mstore(add(add(cd, 0x20), pos), value)
        }
    }

    /// @dev `cd` without its last `cut` bytes.
    function truncate(bytes memory cd, uint256 cut) internal pure returns (bytes memory out) {
        out = new bytes(cd.length - cut);
        for (uint256 i; i < out.length; ++i) {
            out[i] = cd[i];
        }
    }

    /// @dev An interesting value for a word that held `old` in calldata of length `len`: zero, MAX_SIGNERS + 1,
    /// counts that wrap `shl(5, n)`, huge and "negative" offsets, the calldata's end, 2^64, random words, and
    /// small moves into a neighbouring field or array element.
    function interesting(uint256 old, uint256 len, uint256 seed) internal pure returns (uint256) {
        uint256 kind = seed % 14;
        uint256 r = uint256(keccak256(abi.encode(seed)));
        if (kind == 0) return 0;
        if (kind == 1) return 33;
        if (kind == 2) return WRAPPED_THREE;
        if (kind == 3) return (1 << 251) + (r % 8);
        if (kind == 4) return 1 << 255;
        if (kind == 5) return type(uint256).max - (r % 128);
        if (kind == 6) return len + (r % 64);
        if (kind == 7) return 1 << 64;
        if (kind == 8) return r;
        if (kind == 9) return (type(uint256).max - (r % 4096)) & ~uint256(63); // a huge multiple of 64
        uint256 d = 1 + (r % 96);
        unchecked {
            return kind % 2 == 0 ? old + d : old - d;
        }
    }
}
