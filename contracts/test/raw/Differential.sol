// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "../../src/interfaces/IUpdateRegistry.sol";
import {Vm} from "../utils/Vm.sol";
import {RawBytes} from "./RawBytes.sol";
import {RawCalldata} from "./RawCalldata.sol";

/// @notice The reference decoder: Solidity's own checked `abi.decode` of a threshold action's arguments (the
/// calldata after the selector). Reverts exactly where checked decoding refuses the bytes.
contract AbiDecoder {
    function publish(bytes calldata args)
        external
        pure
        returns (IUpdateRegistry.Manifest memory m, IUpdateRegistry.Approval memory a)
    {
        (m, a) = abi.decode(args, (IUpdateRegistry.Manifest, IUpdateRegistry.Approval));
    }

    function rotate(bytes calldata args)
        external
        pure
        returns (uint32 id, address[] memory set, uint8 threshold, IUpdateRegistry.Approval memory a)
    {
        (id, set, threshold, a) = abi.decode(args, (uint32, address[], uint8, IUpdateRegistry.Approval));
    }

    function update(bytes calldata args)
        external
        pure
        returns (uint32 id, address operator, address payee, IUpdateRegistry.Approval memory a)
    {
        (id, operator, payee, a) = abi.decode(args, (uint32, address, address, IUpdateRegistry.Approval));
    }

    function raiseFloor(bytes calldata args)
        external
        pure
        returns (uint32 modelId, uint64 floor, IUpdateRegistry.Approval memory a)
    {
        (modelId, floor, a) = abi.decode(args, (uint32, uint64, IUpdateRegistry.Approval));
    }

    function revoke(bytes calldata args)
        external
        pure
        returns (bytes32 id, string memory reason, IUpdateRegistry.Approval memory a)
    {
        (id, reason, a) = abi.decode(args, (bytes32, string, IUpdateRegistry.Approval));
    }
}

/// @notice Differential harness: a call's raw (possibly mutated) calldata either reverts or has exactly the
/// effect of the same call re-encoded from what `abi.decode` makes of the bytes; accepting bytes that checked
/// decoding refuses is a failure.
abstract contract Differential is RawCalldata {
    uint256 internal constant PUBLISH = 0;
    uint256 internal constant ROTATE = 1;
    uint256 internal constant UPDATE = 2;
    uint256 internal constant RAISE_FLOOR = 3;
    uint256 internal constant REVOKE = 4;
    uint256 internal constant ACTIONS = 5;

    AbiDecoder internal decoder;
    /// @dev A live release (version 1) for `revokeRelease`.
    bytes32 internal liveId;

    /// @dev What a call did: success, return data, and hashes of its logs and of the state it can touch.
    struct Outcome {
        bool ok;
        bytes ret;
        bytes32 logs;
        bytes32 state;
    }

    function setUp() public virtual override {
        super.setUp();
        decoder = new AbiDecoder();
        liveId = _publish(_manifest(1, 0, address(0)));
    }

    /// @dev Head position (argument index) of the approval in each action's calldata.
    function _approvalArg(uint256 action) internal pure returns (uint256) {
        if (action == PUBLISH) return 1;
        if (action == ROTATE || action == UPDATE) return 3;
        return 2;
    }

    /// @dev Well-formed calldata of `action`: approved by signers 0 and 2, or (`forged`) carrying the attacker's
    /// unpatched approval.
    function _call(uint256 action, bool forged) internal view returns (bytes memory cd) {
        if (action == PUBLISH) {
            IUpdateRegistry.Manifest memory m = _manifest(2, 0, address(0));
            cd = abi.encodeCall(registry.publishRelease, (m, _approvalFor(registry.releaseId(m), forged)));
        } else if (action == ROTATE) {
            (, address[] memory ns) = _sortedKeys(0xBEEF, 2);
            bytes32 h =
                keccak256(abi.encode(ROTATE_TYPEHASH, mfId, uint64(0), keccak256(abi.encodePacked(ns)), uint8(1)));
            cd = abi.encodeCall(registry.rotateSigners, (mfId, ns, 1, _approvalFor(h, forged)));
        } else if (action == UPDATE) {
            bytes32 h = keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(0), alice, bob));
            cd = abi.encodeCall(registry.updateManufacturer, (mfId, alice, bob, _approvalFor(h, forged)));
        } else if (action == RAISE_FLOOR) {
            bytes32 h = keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, uint64(5)));
            cd = abi.encodeCall(registry.raiseFloor, (modelId, 5, _approvalFor(h, forged)));
        } else {
            bytes32 h = keccak256(abi.encode(REVOKE_TYPEHASH, liveId, keccak256("bad build")));
            cd = abi.encodeCall(registry.revokeRelease, (liveId, "bad build", _approvalFor(h, forged)));
        }
    }

    /// @dev Signers 0 and 2 of the fixture (valid), or the attacker's unpatched forged approval.
    function _approvalFor(bytes32 structHash, bool forged) internal view returns (IUpdateRegistry.Approval memory) {
        return forged ? _forgedApproval(structHash) : _approve(structHash);
    }

    /// @dev `abi.decode` of `cd`'s arguments, re-encoded canonically; `decoded` false if checked decoding refuses.
    /// `release` is the release whose status the call can change.
    function _reference(uint256 action, bytes memory cd)
        internal
        view
        returns (bool decoded, bytes memory canonical, bytes32 release)
    {
        if (cd.length < 4) return (false, "", bytes32(0));
        bytes memory args = new bytes(cd.length - 4);
        for (uint256 i; i < args.length; ++i) {
            args[i] = cd[i + 4];
        }
        if (action == PUBLISH) {
            try decoder.publish(args) returns (IUpdateRegistry.Manifest memory m, IUpdateRegistry.Approval memory a) {
                return (true, abi.encodeCall(registry.publishRelease, (m, a)), registry.releaseId(m));
            } catch {}
        } else if (action == ROTATE) {
            try decoder.rotate(args) returns (
                uint32 id, address[] memory set, uint8 t, IUpdateRegistry.Approval memory a
            ) {
                return (true, abi.encodeCall(registry.rotateSigners, (id, set, t, a)), bytes32(0));
            } catch {}
        } else if (action == UPDATE) {
            try decoder.update(args) returns (uint32 id, address op, address pay, IUpdateRegistry.Approval memory a) {
                return (true, abi.encodeCall(registry.updateManufacturer, (id, op, pay, a)), bytes32(0));
            } catch {}
        } else if (action == RAISE_FLOOR) {
            try decoder.raiseFloor(args) returns (uint32 md, uint64 floor, IUpdateRegistry.Approval memory a) {
                return (true, abi.encodeCall(registry.raiseFloor, (md, floor, a)), bytes32(0));
            } catch {}
        } else {
            try decoder.revoke(args) returns (bytes32 id, string memory reason, IUpdateRegistry.Approval memory a) {
                return (true, abi.encodeCall(registry.revokeRelease, (id, reason, a)), id);
            } catch {}
        }
    }

    /// @dev Sends `cd` and records what it did.
    function _run(bytes memory cd, bytes32 release) internal returns (Outcome memory o) {
        vm.recordLogs();
        (o.ok, o.ret) = address(registry).call(cd);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        o.logs = keccak256(abi.encode(logs));
        o.state = keccak256(
            abi.encode(
                registry.manufacturer(mfId),
                registry.model(modelId),
                registry.release(liveId),
                registry.release(release),
                registry.counters()
            )
        );
    }

    /// @dev The differential check. Returns whether the raw bytes were accepted.
    function _checkAgainstReference(uint256 action, bytes memory cd) internal returns (bool accepted) {
        (bool decoded, bytes memory canonical, bytes32 release) = _reference(action, cd);
        uint256 snap = vm.snapshotState();
        Outcome memory raw = _run(cd, release);
        vm.revertToState(snap);
        if (!raw.ok) return false;
        assertTrue(decoded, "accepted calldata that abi.decode refuses");
        Outcome memory ref = _run(canonical, release);
        vm.revertToState(snap);
        assertTrue(ref.ok, "accepted calldata whose checked decoding is refused by the contract");
        assertEq(keccak256(raw.ret), keccak256(ref.ret));
        assertEq(raw.logs, ref.logs);
        assertEq(raw.state, ref.state);
        return true;
    }

    // ---------------------------------------------------------------- mutations

    /// @dev Positions of the words a decoder reads by offset or length in `action`'s well-formed calldata: the
    /// head words, the approval's head, the signers and signatures length words, and the other dynamic
    /// argument's offset and length (manifest CID, new signer list, revocation reason).
    function _sensitiveWords(uint256 action, bytes memory cd) internal pure returns (uint256[] memory w) {
        uint256 arg = _approvalArg(action);
        uint256 a = _approvalAt(cd, arg);
        w = new uint256[](arg + 1 + 3 + 4);
        // Earlier mutations may have left any value in these words: positions wrap rather than panic.
        unchecked {
            uint256 k;
            for (uint256 i; i <= arg; ++i) {
                w[k++] = 4 + 32 * i;
            }
            for (uint256 i; i < 3; ++i) {
                w[k++] = a + 32 * i;
            }
            w[k++] = a + _word(cd, a);
            w[k++] = a + _word(cd, a + 64);
            if (action == PUBLISH) {
                uint256 m = 4 + _word(cd, 4);
                w[k++] = m + 0x80;
                w[k++] = m + _word(cd, m + 0x80);
            } else if (action == ROTATE || action == REVOKE) {
                // The new signer list (rotate) or the reason (revoke) is argument 1.
                w[k++] = 4 + 32;
                w[k++] = 4 + _word(cd, 4 + 32);
            } else {
                w[k++] = 4;
                w[k++] = 4 + 32;
            }
        }
    }

    function _interesting(uint256 old, uint256 len, uint256 seed) internal pure returns (uint256) {
        return RawBytes.interesting(old, len, seed);
    }

    /// @dev One mutation of `cd`: a sensitive or random word set to an interesting value, a random byte changed,
    /// truncation, or extension (with or without a length patched to cover the extension).
    function _mutate(uint256 action, bytes memory cd, uint256 seed) internal pure returns (bytes memory out) {
        uint256 kind = seed % 8;
        uint256 r = uint256(keccak256(abi.encode(seed, "mutate")));
        if (cd.length < 4 + 32) return cd; // already cut to less than a word of arguments
        if (kind <= 3) {
            uint256[] memory w = _sensitiveWords(action, cd);
            uint256 pos = w[r % w.length];
            if (!_hasWord(cd, pos)) return cd;
            _setWord(cd, pos, _interesting(_word(cd, pos), cd.length, r >> 8));
            return cd;
        }
        if (kind == 4) {
            uint256 pos = 4 + (r % ((cd.length - 4) / 32)) * 32;
            _setWord(cd, pos, _interesting(_word(cd, pos), cd.length, r >> 8));
            return cd;
        }
        if (kind == 5) {
            cd[4 + (r % (cd.length - 4))] = bytes1(uint8(r >> 64));
            return cd;
        }
        if (kind == 6) {
            return RawBytes.truncate(cd, 1 + (r % (cd.length - 4)));
        }
        // Extend by 1..4 words of random data; sometimes grow the signers or signatures length over them.
        uint256 words = 1 + (r % 4);
        out = bytes.concat(cd, new bytes(words * 32));
        for (uint256 i; i < words; ++i) {
            _setWord(out, cd.length + 32 * i, uint256(keccak256(abi.encode(r, i))));
        }
        if ((r >> 128) % 2 == 0) {
            uint256 arg = _approvalArg(action);
            uint256 field = (r >> 129) % 2 == 0 ? 0 : 2;
            uint256 lenAt = _approvalFieldAt(out, arg, field);
            if (_hasWord(out, lenAt)) {
                unchecked {
                    _setWord(out, lenAt, _word(out, lenAt) + (field == 0 ? words : words * 32));
                }
            }
        }
    }
}
