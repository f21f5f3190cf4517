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
    /// keccak256). Every field is read through the ABI decoder, so dirty high bits revert instead of hashing.
    function hash(IUpdateRegistry.Manifest calldata m) internal pure returns (bytes32 h) {
        bytes32 cidHash = keccak256(m.bundleCid);
        uint256 modelId = m.modelId;
        uint256 version = m.version;
        uint256 bundleSize = m.bundleSize;
        uint256 price = m.price;
        uint256 token = uint160(m.paymentToken);
        uint256 expiry = m.expiry;
        bytes32 typeHash = TYPEHASH;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typeHash)
            mstore(add(p, 0x20), modelId)
            mstore(add(p, 0x40), version)
            mstore(add(p, 0x60), calldataload(add(m, 0x40)))
            mstore(add(p, 0x80), bundleSize)
            mstore(add(p, 0xa0), cidHash)
            mstore(add(p, 0xc0), calldataload(add(m, 0xa0)))
            mstore(add(p, 0xe0), price)
            mstore(add(p, 0x100), token)
            mstore(add(p, 0x120), calldataload(add(m, 0x100)))
            mstore(add(p, 0x140), expiry)
            mstore(add(p, 0x160), calldataload(add(m, 0x140)))
            h := keccak256(p, 0x180)
        }
    }
}
