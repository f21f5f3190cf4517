// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "../../src/interfaces/IUpdateRegistry.sol";
import {Vm} from "../utils/Vm.sol";
import {Differential} from "./Differential.sol";

/// @notice Second review of the threshold fix, as an attacker with no signer key or fewer than the threshold:
/// every attempt is raw calldata (`abi.encodeCall`, then patched words, sent with a low-level call) against all
/// five threshold actions, and each is checked against Solidity's own decoding (`Differential`). Each test names
/// the attempt; all of them are refusals or, where the bytes are a legal encoding, have exactly the effect of
/// the checked decoding.
contract ApprovalAttackTest is Differential {
    address internal constant ATTACKER = address(0xA77AC3);

    // ---------------------------------------------------------------- helpers

    /// @dev The EIP-712 struct hash each action's well-formed call (`Differential._call`) signs.
    function _structHash(uint256 action) internal view returns (bytes32) {
        if (action == PUBLISH) return registry.releaseId(_manifest(2, 0, address(0)));
        if (action == ROTATE) {
            (, address[] memory ns) = _sortedKeys(0xBEEF, 2);
            return keccak256(abi.encode(ROTATE_TYPEHASH, mfId, uint64(0), keccak256(abi.encodePacked(ns)), uint8(1)));
        }
        if (action == UPDATE) return keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(0), alice, bob));
        if (action == RAISE_FLOOR) return keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, uint64(5)));
        return keccak256(abi.encode(REVOKE_TYPEHASH, liveId, keccak256("bad build")));
    }

    /// @dev The well-formed call of `action` carrying approval `a` instead of signers 0 and 2.
    function _callWith(uint256 action, IUpdateRegistry.Approval memory a) internal view returns (bytes memory) {
        if (action == PUBLISH) return abi.encodeCall(registry.publishRelease, (_manifest(2, 0, address(0)), a));
        if (action == ROTATE) {
            (, address[] memory ns) = _sortedKeys(0xBEEF, 2);
            return abi.encodeCall(registry.rotateSigners, (mfId, ns, 1, a));
        }
        if (action == UPDATE) return abi.encodeCall(registry.updateManufacturer, (mfId, alice, bob, a));
        if (action == RAISE_FLOOR) return abi.encodeCall(registry.raiseFloor, (modelId, 5, a));
        return abi.encodeCall(registry.revokeRelease, (liveId, "bad build", a));
    }

    /// @dev Approval of `action` with the fixture's set and threshold and the given signature bytes.
    function _withSigs(uint256 action, bytes memory sigs) internal view returns (bytes memory) {
        return _callWith(action, IUpdateRegistry.Approval({signers: signers, threshold: 2, signatures: sigs}));
    }

    function _sig(uint256 action, uint256 key) internal view returns (bytes memory) {
        return _signCompact(key, _digest(_structHash(action)));
    }

    /// @dev Sends `cd` from an account holding no key; requires a refusal with exactly `expected` (or, if
    /// `expected` is 4 bytes long, that selector), no state change, and refusal by the checked decoding too.
    function _attempt(uint256 action, bytes memory cd, bytes memory expected) internal {
        bytes32 before = _state();
        vm.prank(ATTACKER);
        (bool ok, bytes memory ret) = _send(cd);
        assertFalse(ok);
        if (expected.length == 4) assertEq(bytes4(ret), bytes4(expected));
        else assertEq(keccak256(ret), keccak256(expected));
        assertEq(_state(), before);
        assertFalse(_checkAgainstReference(action, cd));
    }

    function _state() internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                registry.manufacturer(mfId), registry.model(modelId), registry.release(liveId), registry.counters()
            )
        );
    }

    function _mismatch(bytes32 given) internal view returns (bytes memory) {
        return abi.encodeWithSelector(
            IUpdateRegistry.UpdateRegistrySignerSetMismatch.selector,
            mfId,
            registry.manufacturer(mfId).signersHash,
            given
        );
    }

    function _invalid(uint256 index, address recovered) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignature.selector, index, recovered);
    }

    /// @dev Calldata position of the first signer word / first signature byte of `action`'s approval.
    function _setData(bytes memory cd, uint256 action) internal pure returns (uint256) {
        return _approvalFieldAt(cd, _approvalArg(action), 0) + 32;
    }

    function _sigData(bytes memory cd, uint256 action) internal pure returns (uint256) {
        return _approvalFieldAt(cd, _approvalArg(action), 2) + 32;
    }

    // ---------------------------------------------------------------- the signer set

    /// @dev A signer word with bits above 160 (an address as Solidity would never encode it, and `abi.decode`
    /// refuses): the set hash covers the raw words, so it is not the stored hash (computed over clean words
    /// only, as the registration's checked element reads refuse dirty ones — next test).
    function test_RevertWhen_signerWord_dirtyUpperBits() public {
        uint256[3] memory dirt = [uint256(1) << 160, uint256(1) << 255, type(uint256).max << 160];
        for (uint256 action; action < ACTIONS; ++action) {
            for (uint256 i; i < 3; ++i) {
                for (uint256 d; d < dirt.length; ++d) {
                    bytes memory cd = _call(action, false);
                    uint256 pos = _setData(cd, action) + 32 * i;
                    _setWord(cd, pos, _word(cd, pos) | dirt[d]);
                    uint256[3] memory w;
                    for (uint256 j; j < 3; ++j) {
                        w[j] = _word(cd, _setData(cd, action) + 32 * j);
                    }
                    _attempt(action, cd, _mismatch(keccak256(abi.encode(uint256(2), w[0], w[1], w[2]))));
                }
            }
        }
    }

    /// @dev No stored set can hold a dirty word: `registerManufacturer` and `rotateSigners` refuse one (the
    /// checked read of each element reverts before anything is hashed or stored).
    function test_RevertWhen_registerOrRotate_dirtySignerWord() public {
        bytes memory cd = abi.encodeCall(registry.registerManufacturer, ("Evil", ATTACKER, ATTACKER, signers, 2, ""));
        uint256 setAt = 4 + _word(cd, 4 + 3 * 32) + 32;
        _setWord(cd, setAt + 32, _word(cd, setAt + 32) | (1 << 200));
        uint32 before = registry.counters().manufacturers;
        vm.prank(ATTACKER);
        (bool ok, bytes memory ret) = _send(cd);
        assertFalse(ok);
        assertEq(ret.length, 0); // the ABI decoder's own refusal
        assertEq(registry.counters().manufacturers, before);

        cd = _call(ROTATE, false);
        uint256 newSet = 4 + _word(cd, 4 + 32) + 32;
        _setWord(cd, newSet, _word(cd, newSet) | (1 << 160));
        vm.prank(ATTACKER);
        (ok, ret) = _send(cd);
        assertFalse(ok);
        assertEq(ret.length, 0);
        assertFalse(_checkAgainstReference(ROTATE, cd));
    }

    /// @dev An empty signer list (honest length 0) hashes to keccak256(threshold) only: not the set.
    function test_RevertWhen_signerSet_empty() public {
        for (uint256 action; action < ACTIONS; ++action) {
            bytes memory cd =
                _callWith(action, IUpdateRegistry.Approval({signers: new address[](0), threshold: 2, signatures: ""}));
            _attempt(action, cd, _mismatch(keccak256(abi.encode(uint256(2)))));
        }
    }

    /// @dev One stolen key, and the approval's threshold word patched down to 1 (or 0, or dirty): the threshold
    /// is inside the hashed words, so the set no longer matches.
    function test_RevertWhen_oneKey_thresholdWordPatched() public {
        uint256[4] memory ts = [uint256(1), 0, (1 << 8) + 2, 1 << 255];
        for (uint256 action; action < ACTIONS; ++action) {
            for (uint256 t; t < ts.length; ++t) {
                bytes memory cd = _withSigs(action, _sig(action, keys[0]));
                _setWord(cd, _approvalAt(cd, _approvalArg(action)) + 32, ts[t]);
                _attempt(
                    action,
                    cd,
                    _mismatch(keccak256(abi.encode(ts[t], uint256(uint160(signers[0])), signers[1], signers[2])))
                );
            }
            // Unpatched, one signature of a 2-of-3 set is simply not enough.
            _attempt(
                action,
                _withSigs(action, _sig(action, keys[1])),
                abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotEnoughSignatures.selector, 1, 2)
            );
        }
    }

    /// @dev The approval's set relocated to an offset that is not a multiple of 32 (here 7 bytes past the end of
    /// the well-formed call): a legal encoding that `abi.decode` reads the same way, so the call is accepted
    /// with exactly the checked decoding's effect — the hash binds the words, not where they are. The same for
    /// the signatures.
    function test_approvalOffsets_unaligned_matchCheckedDecoding() public {
        for (uint256 action; action < ACTIONS; ++action) {
            for (uint256 field; field < 3; field += 2) {
                bytes memory base = _call(action, false);
                uint256 a = _approvalAt(base, _approvalArg(action));
                uint256 src = a + _word(base, a + 32 * field);
                uint256 size = field == 0 ? 4 * 32 : 32 + 128;
                bytes memory moved = new bytes(7 + size);
                for (uint256 i; i < size; ++i) {
                    moved[7 + i] = base[src + i];
                }
                bytes memory cd = bytes.concat(base, moved);
                _setWord(cd, a + 32 * field, base.length + 7 - a);
                assertTrue(_checkAgainstReference(action, cd), "unaligned legal encoding refused");
            }
        }
    }

    /// @dev Offsets that would reach back to the selector or the head of the call (only by wrapping around
    /// 2^256, as offsets are added to the approval's position): refused as out of bounds, nothing read.
    function test_RevertWhen_approvalOffset_wrapsToSelectorOrHead() public {
        for (uint256 action; action < ACTIONS; ++action) {
            for (uint256 field; field < 3; field += 2) {
                bytes memory cd = _call(action, false);
                uint256 a = _approvalAt(cd, _approvalArg(action));
                uint256[3] memory rels;
                unchecked {
                    rels = [0 - a, 0 - a + 4, 0 - a + 4 + 32];
                }
                for (uint256 i; i < rels.length; ++i) {
                    _setWord(cd, a + 32 * field, rels[i]);
                    _attempt(action, cd, abi.encodePacked(IUpdateRegistry.UpdateRegistryApprovalOutOfBounds.selector));
                }
            }
        }
    }

    /// @dev Overlapping arrays: the signatures' length word pointed at signer 0 (an address: longer than the
    /// calldata, out of bounds), and a copy of the set `[3, s0, s1, s2]` behind a length of 128 with the
    /// signatures pointed at that length and the signers at the `3`: the set hashes right and the signatures
    /// are the set's own words, (r = 3, vs = s0) and (r = s1, vs = s2) — never a member's signature.
    function test_RevertWhen_signaturesOverlapSigners() public {
        for (uint256 action; action < ACTIONS; ++action) {
            bytes memory cd = _call(action, false);
            uint256 a = _approvalAt(cd, _approvalArg(action));
            _setWord(cd, a + 64, _word(cd, a) + 32);
            _attempt(action, cd, abi.encodePacked(IUpdateRegistry.UpdateRegistryApprovalOutOfBounds.selector));

            cd = _call(action, false);
            bytes memory sent =
                bytes.concat(cd, abi.encode(uint256(128), uint256(3), signers[0], signers[1], signers[2]));
            _setWord(sent, a + 64, cd.length - a);
            _setWord(sent, a, cd.length + 32 - a);
            _attempt(action, sent, abi.encodePacked(IUpdateRegistry.UpdateRegistryInvalidSignature.selector));
        }
    }

    // ---------------------------------------------------------------- the signatures

    /// @dev One key's signature used twice, or twice with extra members (count > n), or in descending order:
    /// recovered signers must strictly ascend, so each is refused at the repeat.
    function test_RevertWhen_signatureReusedOrUnordered() public {
        for (uint256 action; action < ACTIONS; ++action) {
            bytes memory s0 = _sig(action, keys[0]);
            bytes memory s1 = _sig(action, keys[1]);
            bytes memory s2 = _sig(action, keys[2]);
            _attempt(action, _withSigs(action, bytes.concat(s0, s0)), _invalid(1, signers[0]));
            _attempt(action, _withSigs(action, bytes.concat(s2, s0)), _invalid(1, signers[0]));
            _attempt(action, _withSigs(action, bytes.concat(s0, s1, s2, s2)), _invalid(3, signers[2]));
            _attempt(action, _withSigs(action, bytes.concat(s1, s1, s1)), _invalid(1, signers[1]));
            // All three members in order (more than the threshold) is a valid approval.
            assertTrue(_checkAgainstReference(action, _withSigs(action, bytes.concat(s0, s1, s2))));
        }
    }

    /// @dev One member's signature plus one from a key outside the set (with the set's words honest): refused at
    /// the outsider whatever the order.
    function test_RevertWhen_oneMemberPlusOutsider() public {
        (uint256[2] memory ks, address[2] memory outsiders) = _throwawayKeys();
        for (uint256 action; action < ACTIONS; ++action) {
            bytes memory s0 = _sig(action, keys[0]);
            bytes memory x = _sig(action, ks[0]);
            _attempt(action, _withSigs(action, bytes.concat(s0, x)), _invalid(1, outsiders[0]));
            _attempt(action, _withSigs(action, bytes.concat(x, s0)), _invalid(0, outsiders[0]));
        }
    }

    /// @dev EIP-2098 encodings. The high-s twin of a valid signature (s' = n - s, parity flipped) is a real
    /// signature by the same key, but s' >= 2^255 unless s > n - 2^255 (a 2^-128 fraction of low s), so it
    /// cannot be written in 64 bytes: its top bit lands on the parity bit and the masked s is another number (no
    /// member recovers). Any s that fits but lies above n / 2 (where the rare encodable twins are) is refused as
    /// malleable; a flipped parity bit recovers some other address; r = 0 or s = 0 recovers nothing.
    function test_RevertWhen_signatureEncodingTampered() public {
        uint256 half = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
        for (uint256 action; action < ACTIONS; ++action) {
            bytes32 digest = _digest(_structHash(action));
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[0], digest);
            bytes memory good2 = _sig(action, keys[2]);
            uint256 twinS = SECP256K1_N - uint256(s);
            assertEq(ecrecover(digest, 55 - v, r, bytes32(twinS)), signers[0]);
            assertTrue(twinS >> 255 == 1);
            bytes memory twin = abi.encodePacked(r, bytes32(twinS));
            address masked = ecrecover(digest, 28, r, bytes32(twinS & ~(uint256(1) << 255)));
            _attempt(action, _withSigs(action, bytes.concat(twin, good2)), _invalid(0, masked));
            for (uint256 hi = half + 1; hi < half + 3; ++hi) {
                _attempt(
                    action,
                    _withSigs(action, bytes.concat(abi.encodePacked(r, bytes32(hi | (1 << 255))), good2)),
                    abi.encodeWithSelector(IUpdateRegistry.UpdateRegistrySignatureMalleable.selector, 0)
                );
            }
            _attempt(
                action,
                _withSigs(action, bytes.concat(abi.encodePacked(r, bytes32(type(uint256).max >> 1)), good2)),
                abi.encodeWithSelector(IUpdateRegistry.UpdateRegistrySignatureMalleable.selector, 0)
            );

            bytes memory flipped = abi.encodePacked(r, bytes32(uint256(s) | (uint256(28 - v) << 255)));
            address other = ecrecover(digest, 55 - v, r, s);
            _attempt(action, _withSigs(action, bytes.concat(flipped, good2)), _invalid(0, other));
            _attempt(
                action, _withSigs(action, bytes.concat(abi.encodePacked(bytes32(0), s), good2)), _invalid(0, address(0))
            );
            _attempt(
                action, _withSigs(action, bytes.concat(abi.encodePacked(r, bytes32(0)), good2)), _invalid(0, address(0))
            );
        }
    }

    // ---------------------------------------------------------------- replay

    /// @dev A second manufacturer registered with the very same signer set: an approval of the first one's
    /// rotation or update does not carry over (the manufacturer id is signed), nor does the first one's nonce-0
    /// approval once used.
    function test_RevertWhen_approvalReplayed_acrossManufacturerOrTwice() public {
        vm.prank(ATTACKER);
        uint32 twin = registry.registerManufacturer("Twin", ATTACKER, ATTACKER, signers, 2, "");
        bytes memory cd = _call(UPDATE, false);
        _setWord(cd, 4, twin);
        vm.prank(ATTACKER);
        (bool ok, bytes memory ret) = _send(cd);
        assertFalse(ok);
        assertEq(bytes4(ret), IUpdateRegistry.UpdateRegistryInvalidSignature.selector);
        assertEq(registry.manufacturer(twin).operator, ATTACKER);

        for (uint256 action; action < ACTIONS; ++action) {
            uint256 snap = vm.snapshotState();
            bytes memory call_ = _call(action, false);
            (ok,) = _send(call_);
            assertTrue(ok);
            vm.prank(ATTACKER);
            (ok,) = _send(call_);
            assertFalse(ok);
            vm.revertToState(snap);
        }
    }

    // ---------------------------------------------------------------- the manifest

    /// @dev `bundleCid`'s offset pointed into the manifest's own head (its length word is then `version`, its
    /// bytes the start of `bundleSha256`) or to an unaligned copy: a legal encoding `abi.decode` reads the same
    /// way. Signed for what it decodes to, it publishes exactly that manifest, and the event carries the
    /// canonical encoding (no trace of the odd offset).
    function test_publishRelease_cidOffsetIntoHeadOrUnaligned_matchesCheckedDecoding() public {
        uint256 snap = vm.snapshotState();
        for (uint256 variant; variant < 2; ++variant) {
            bytes memory cd = _call(PUBLISH, false);
            uint256 m = 4 + _word(cd, 4);
            if (variant == 0) {
                _setWord(cd, m + 0x80, 0x20); // length word := version (2)
            } else {
                uint256 src = m + _word(cd, m + 0x80);
                uint256 size = 32 + 64;
                bytes memory moved = new bytes(3 + size);
                for (uint256 i; i < size; ++i) {
                    moved[3 + i] = cd[src + i];
                }
                uint256 oldLen = cd.length;
                cd = bytes.concat(cd, moved);
                _setWord(cd, m + 0x80, oldLen + 3 - m);
            }
            (bool decoded, bytes memory canonical,) = _reference(PUBLISH, cd);
            assertTrue(decoded);
            IUpdateRegistry.Manifest memory dm;
            bytes memory args = new bytes(canonical.length - 4);
            for (uint256 i; i < args.length; ++i) {
                args[i] = canonical[i + 4];
            }
            (dm,) = abi.decode(args, (IUpdateRegistry.Manifest, IUpdateRegistry.Approval));
            // Re-sign the decoded manifest in place (the signatures keep their position and length).
            bytes memory sigs = bytes.concat(
                _signCompact(keys[0], _digest(registry.releaseId(dm))),
                _signCompact(keys[2], _digest(registry.releaseId(dm)))
            );
            uint256 sigAt = _sigData(cd, PUBLISH);
            for (uint256 i; i < 128; ++i) {
                cd[sigAt + i] = sigs[i];
            }
            assertTrue(_checkAgainstReference(PUBLISH, cd), "legal manifest encoding refused");
            vm.recordLogs();
            (bool ok,) = _send(cd);
            assertTrue(ok);
            Vm.Log[] memory logs = vm.getRecordedLogs();
            assertEq(logs.length, 1);
            // Canonical: exactly `abi.encode(manifest, signerMask)` (signers 0 and 2: mask 0b101).
            assertEq(keccak256(logs[0].data), keccak256(abi.encode(dm, uint256(5))));
            assertEq(registry.release(registry.releaseId(dm)).version, 2);
            vm.revertToState(snap);
        }
    }
}
