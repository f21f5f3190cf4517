// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Signatures
/// @notice EIP-2098 compact signature recovery without malleability, and EIP-712 digests.
library Signatures {
    /// @dev secp256k1n / 2: larger `s` values are the malleable twin of a valid signature (EIP-2).
    uint256 internal constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// @dev Low 255 bits of the second word of a compact signature.
    uint256 internal constant S_MASK = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;

    /// @dev Recovers the signer of `digest` from the compact signature (`r`, `vs`). Takes words, reads no calldata.
    /// @param digest the signed 32-byte digest.
    /// @param r the signature's `r`.
    /// @param vs the y parity in bit 255 and `s` in the low 255 bits (EIP-2098).
    /// @return signer the address, or zero if `s` is high (malleable) or ecrecover fails.
    /// @return highS whether the signature was rejected for a high `s`.
    function recover(bytes32 digest, bytes32 r, bytes32 vs) internal view returns (address signer, bool highS) {
        assembly ("memory-safe") {
            let s := and(vs, S_MASK)
            highS := gt(s, HALF_ORDER)
            if iszero(highS) {
                let p := mload(0x40)
                mstore(p, digest)
                mstore(add(p, 0x20), add(27, shr(255, vs)))
                mstore(add(p, 0x40), r)
                mstore(add(p, 0x60), s)
                let ok := staticcall(gas(), 1, p, 0x80, p, 0x20)
                signer := mul(mload(p), and(ok, eq(returndatasize(), 0x20)))
            }
        }
    }

    /// @dev keccak256("\x19\x01" ‖ domainSeparator ‖ structHash).
    /// @param domainSeparator the EIP-712 domain separator.
    /// @param structHash the EIP-712 struct hash.
    /// @return digest the digest to sign.
    function typedDataDigest(bytes32 domainSeparator, bytes32 structHash) internal pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, hex"1901")
            mstore(add(p, 0x02), domainSeparator)
            mstore(add(p, 0x22), structHash)
            digest := keccak256(p, 0x42)
        }
    }
}
