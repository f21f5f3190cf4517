// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "../interfaces/IUpdateRegistry.sol";

/// @title ManifestHash
/// @notice EIP-712 struct hash of a release manifest, which is also the release id.
library ManifestHash {
    /// @dev The EIP-712 type string of a manifest.
    bytes internal constant TYPE = "Manifest(uint32 modelId,uint64 version,bytes32 bundleSha256,uint64 bundleSize,"
        "bytes bundleCid,bytes32 imageSha256,uint128 price,address paymentToken,bytes32 policyId,uint64 expiry,"
        "bytes32 metadataHash)";

    /// @dev keccak256(TYPE).
    bytes32 internal constant TYPEHASH = keccak256(TYPE);

    /// @dev hashStruct(manifest) = keccak256(TYPEHASH ‖ the 11 fields as 32-byte words, `bundleCid` replaced by its
    /// keccak256). Dirty high bits in a field (an encoding no EIP-712 signer produces) revert instead of hashing,
    /// so a manifest has exactly one id and the emitted copy of its calldata is canonical.
    function hash(IUpdateRegistry.Manifest calldata m) internal pure returns (bytes32 h) {
        bytes32 typeHash = TYPEHASH;
        assembly ("memory-safe") {
            // `bundleCid` decoded by hand: an offset out of bounds reads zeros, which only changes the hash (so no
            // signature matches); the same bytes are what `UpdateRegistry` emits.
            let cid := add(m, calldataload(add(m, 0x80)))
            let cidLen := calldataload(cid)
            let p := mload(0x40)
            calldatacopy(p, add(cid, 0x20), cidLen)
            let cidHash := keccak256(p, cidLen)
            let modelId := calldataload(m)
            let version := calldataload(add(m, 0x20))
            let bundleSize := calldataload(add(m, 0x60))
            let price := calldataload(add(m, 0xc0))
            let token := calldataload(add(m, 0xe0))
            let expiry := calldataload(add(m, 0x120))
            if or(
                or(shr(32, modelId), or(shr(64, version), shr(64, bundleSize))),
                or(shr(128, price), or(shr(160, token), shr(64, expiry)))
            ) { revert(0, 0) }
            mstore(p, typeHash)
            calldatacopy(add(p, 0x20), m, 0x160)
            mstore(add(p, 0xa0), cidHash)
            h := keccak256(p, 0x180)
        }
    }
}
