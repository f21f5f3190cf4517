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

    /// @notice A manifest field holds a value wider than its type (an encoding no EIP-712 signer produces and
    /// `abi.decode` refuses).
    /// @param field the field's position in `Manifest` (0 `modelId`, 1 `version`, 3 `bundleSize`, 6 `price`,
    /// 7 `paymentToken`, 9 `expiry`).
    /// @param word the 32-byte word found there.
    error ManifestHashDirtyField(uint256 field, uint256 word);

    /// @notice The manifest's `bundleCid` does not lie inside the calldata.
    /// @param offset the `bundleCid` offset word (relative to the manifest).
    /// @param length the length word read (zero if the offset is already out of bounds).
    /// @param calldataSize the size of the calldata.
    error ManifestHashCidOutOfBounds(uint256 offset, uint256 length, uint256 calldataSize);

    /// @dev hashStruct(manifest) = keccak256(TYPEHASH ‖ the 11 fields as 32-byte words, `bundleCid` replaced by its
    /// keccak256). Dirty high bits in a field revert instead of hashing, so a manifest has exactly one id.
    /// @param m the manifest; its 11 head words lie inside the calldata (the ABI decoder checks that).
    /// @return h the struct hash (the release id).
    function hash(IUpdateRegistry.Manifest calldata m) internal pure returns (bytes32 h) {
        (h,,) = hashWithCid(m);
    }

    /// @dev `hash`, also returning where the `bundleCid` bytes are, bounds-checked against the calldata: the
    /// offset word is at most `calldatasize()` (so `m + offset` cannot wrap), the length word and the
    /// `length` bytes after it end inside the calldata. Checked before any of them is used.
    /// @param m the manifest (head inside the calldata).
    /// @return h the struct hash (the release id).
    /// @return cid calldata position of the first byte of `bundleCid`.
    /// @return cidLen the length of `bundleCid` (at most `calldatasize()`).
    function hashWithCid(IUpdateRegistry.Manifest calldata m)
        internal
        pure
        returns (bytes32 h, uint256 cid, uint256 cidLen)
    {
        bytes32 typeHash = TYPEHASH;
        bool bad;
        assembly ("memory-safe") {
            let end := calldatasize()
            let rel := calldataload(add(m, 0x80))
            // With rel <= end, m + rel + 0x20 cannot wrap; cidLen is used only once it and its bytes are inside.
            cid := add(add(m, rel), 0x20)
            cidLen := calldataload(sub(cid, 0x20))
            bad := or(
                or(gt(rel, end), gt(cid, end)),
                or(
                    or(
                        shr(32, calldataload(m)),
                        or(shr(64, calldataload(add(m, 0x20))), shr(64, calldataload(add(m, 0x60))))
                    ),
                    or(
                        shr(128, calldataload(add(m, 0xc0))),
                        or(shr(160, calldataload(add(m, 0xe0))), shr(64, calldataload(add(m, 0x120))))
                    )
                )
            )
            if iszero(bad) {
                bad := gt(cidLen, sub(end, cid))
                if iszero(bad) {
                    let p := mload(0x40)
                    calldatacopy(p, cid, cidLen)
                    let cidHash := keccak256(p, cidLen)
                    mstore(p, typeHash)
                    calldatacopy(add(p, 0x20), m, 0x160)
                    mstore(add(p, 0xa0), cidHash)
                    h := keccak256(p, 0x180)
                }
            }
        }
        if (bad) _revert(m);
    }

    /// @dev Reverts for a manifest `hashWithCid` refused: the CID out of bounds (with the values read), else the
    /// first field whose word has bits above its type's width.
    function _revert(IUpdateRegistry.Manifest calldata m) private pure {
        uint256 rel;
        uint256 cidLen;
        bool outOfBounds;
        assembly ("memory-safe") {
            let end := calldatasize()
            rel := calldataload(add(m, 0x80))
            let cid := add(add(m, rel), 0x20)
            outOfBounds := or(gt(rel, end), gt(cid, end))
            if iszero(outOfBounds) {
                cidLen := calldataload(sub(cid, 0x20))
                outOfBounds := gt(cidLen, sub(end, cid))
            }
        }
        if (outOfBounds) revert ManifestHashCidOutOfBounds(rel, cidLen, msg.data.length);
        _revertDirty(m);
    }

    /// @dev Reverts with the first field whose word has bits above its type's width.
    function _revertDirty(IUpdateRegistry.Manifest calldata m) private pure {
        // (width << 8 | field) per checked field, lowest first: modelId 32, version 64, bundleSize 64, price 128,
        // paymentToken 160, expiry 64.
        for (uint256 layout = 0x4009a0078006400340012000; layout != 0; layout >>= 16) {
            uint256 field = layout & 0xff;
            uint256 word;
            assembly ("memory-safe") {
                word := calldataload(add(m, shl(5, field)))
            }
            if (word >> ((layout >> 8) & 0xff) != 0) revert ManifestHashDirtyField(field, word);
        }
    }
}
