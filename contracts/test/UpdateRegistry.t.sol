// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {UpdateRegistry} from "../src/UpdateRegistry.sol";
import {IUpdateRegistry} from "../src/interfaces/IUpdateRegistry.sol";
import {ManifestHash} from "../src/libraries/ManifestHash.sol";
import {Base} from "./Base.t.sol";
import {Merkle} from "./utils/Merkle.sol";

contract UpdateRegistryTest is Base {
    uint256 internal constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // ---------------------------------------------------------------- helpers

    function _rotateHash(uint32 id, uint64 nonce, address[] memory set, uint8 threshold)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(ROTATE_TYPEHASH, id, nonce, keccak256(abi.encodePacked(set)), threshold));
    }

    function _addrs(address a, address b) internal pure returns (address[] memory s) {
        s = new address[](2);
        (s[0], s[1]) = (a, b);
    }

    // ---------------------------------------------------------------- registerManufacturer

    function test_registerManufacturer() public {
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ManufacturerRegistered(2, alice, bob, "Beta", signers, 3, "bafyp");
        vm.prank(alice);
        uint32 id = registry.registerManufacturer("Beta", alice, bob, signers, 3, "bafyp");
        assertEq(id, 2);
        IUpdateRegistry.Manufacturer memory m = registry.manufacturer(id);
        assertEq(m.signersHash, registry.signersHash(signers, 3));
        assertEq(m.signersHash, keccak256(abi.encodePacked(uint256(3), signers)));
        assertEq(m.operator, alice);
        assertEq(m.payee, bob);
        assertEq(m.nonce, 0);
        assertEq(registry.counters().manufacturers, 2);
    }

    function test_registerManufacturer_defaultsOperatorAndPayee() public {
        vm.prank(bob);
        uint32 id = registry.registerManufacturer("Beta", address(0), address(0), signers, 1, "");
        assertEq(registry.manufacturer(id).operator, bob);
        assertEq(registry.manufacturer(id).payee, bob);
    }

    function test_RevertWhen_registerManufacturer_emptySet() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignerSet.selector, 0, 1));
        registry.registerManufacturer("x", alice, alice, new address[](0), 1, "");
    }

    function test_RevertWhen_registerManufacturer_zeroThreshold() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignerSet.selector, 3, 0));
        registry.registerManufacturer("x", alice, alice, signers, 0, "");
    }

    function test_RevertWhen_registerManufacturer_thresholdAboveSize() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignerSet.selector, 3, 4));
        registry.registerManufacturer("x", alice, alice, signers, 4, "");
    }

    function test_RevertWhen_registerManufacturer_tooManySigners() public {
        (, address[] memory big) = _sortedKeys(7, 33);
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignerSet.selector, 33, 2));
        registry.registerManufacturer("x", alice, alice, big, 2, "");
    }

    function test_RevertWhen_registerManufacturer_unsorted() public {
        address[] memory s = _addrs(signers[1], signers[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistrySignersNotAscending.selector, 1, signers[0])
        );
        registry.registerManufacturer("x", alice, alice, s, 1, "");
    }

    function test_RevertWhen_registerManufacturer_duplicate() public {
        address[] memory s = _addrs(signers[0], signers[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistrySignersNotAscending.selector, 1, signers[0])
        );
        registry.registerManufacturer("x", alice, alice, s, 1, "");
    }

    function test_RevertWhen_registerManufacturer_zeroSigner() public {
        address[] memory s = _addrs(address(0), signers[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistrySignersNotAscending.selector, 0, address(0))
        );
        registry.registerManufacturer("x", alice, alice, s, 1, "");
    }

    function testFuzz_registerManufacturer_validSets(uint256 seed, uint256 n, uint256 threshold) public {
        n = bound(n, 1, 32);
        threshold = bound(threshold, 1, n);
        (, address[] memory set) = _sortedKeys(seed, n);
        uint32 id = registry.registerManufacturer("f", alice, alice, set, uint8(threshold), "");
        assertEq(registry.manufacturer(id).signersHash, keccak256(abi.encodePacked(threshold, set)));
    }

    // ---------------------------------------------------------------- rotateSigners

    function test_rotateSigners() public {
        (uint256[] memory nk, address[] memory ns) = _sortedKeys(0xBEEF, 4);
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.SignersRotated(mfId, 0, ns, 3);
        registry.rotateSigners(mfId, ns, 3, _approve(_rotateHash(mfId, 0, ns, 3)));
        assertEq(registry.manufacturer(mfId).signersHash, keccak256(abi.encodePacked(uint256(3), ns)));
        assertEq(registry.manufacturer(mfId).nonce, 1);

        // The old set can no longer publish; the new one can, with its new threshold.
        IUpdateRegistry.Manifest memory m = _manifest(1, 0, address(0));
        bytes32 id = registry.releaseId(m);
        IUpdateRegistry.Approval memory old = _approve(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistrySignerSetMismatch.selector,
                mfId,
                registry.manufacturer(mfId).signersHash,
                registry.signersHash(signers, 2)
            )
        );
        registry.publishRelease(m, old);
        uint256[] memory which = new uint256[](3);
        (which[0], which[1], which[2]) = (0, 1, 3);
        registry.publishRelease(m, _approvalBy(id, nk, ns, 3, which));
    }

    function test_RevertWhen_rotateSigners_replayed() public {
        (, address[] memory ns) = _sortedKeys(0xBEEF, 3);
        IUpdateRegistry.Approval memory a = _approve(_rotateHash(mfId, 0, ns, 2));
        registry.rotateSigners(mfId, ns, 2, a);
        // Rotating back needs the new set; replaying the old approval fails on the set hash.
        vm.expectRevert();
        registry.rotateSigners(mfId, ns, 2, a);
    }

    function test_RevertWhen_rotateSigners_staleNonce() public {
        (uint256[] memory nk, address[] memory ns) = _sortedKeys(0xBEEF, 3);
        registry.rotateSigners(mfId, ns, 2, _approve(_rotateHash(mfId, 0, ns, 2)));
        (, address[] memory back) = _sortedKeys(0xC0DE, 3);
        // Signed with nonce 0 by the current set: the digest differs, so the signers recovered are not members.
        IUpdateRegistry.Approval memory a = _approvalBy(_rotateHash(mfId, 0, back, 2), nk, ns, 2, _pair(0, 1));
        vm.expectRevert();
        registry.rotateSigners(mfId, back, 2, a);
        registry.rotateSigners(mfId, back, 2, _approvalBy(_rotateHash(mfId, 1, back, 2), nk, ns, 2, _pair(0, 1)));
    }

    function test_RevertWhen_rotateSigners_belowThreshold() public {
        (, address[] memory ns) = _sortedKeys(0xBEEF, 3);
        IUpdateRegistry.Approval memory a = _approval(_rotateHash(mfId, 0, ns, 2), _one(1));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotEnoughSignatures.selector, 1, 2));
        registry.rotateSigners(mfId, ns, 2, a);
    }

    function test_RevertWhen_rotateSigners_unknownManufacturer() public {
        IUpdateRegistry.Approval memory a = _approve(_rotateHash(9, 0, signers, 2));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryUnknownManufacturer.selector, 9));
        registry.rotateSigners(9, signers, 2, a);
    }

    function test_RevertWhen_rotateSigners_invalidNewSet() public {
        IUpdateRegistry.Approval memory a = _approve(_rotateHash(mfId, 0, signers, 4));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignerSet.selector, 3, 4));
        registry.rotateSigners(mfId, signers, 4, a);
    }

    // ---------------------------------------------------------------- approvals (through publishRelease)

    function _publishWith(IUpdateRegistry.Approval memory a) internal returns (bytes32) {
        return registry.publishRelease(_manifest(1, 0, address(0)), a);
    }

    function _m1Hash() internal view returns (bytes32) {
        return registry.releaseId(_manifest(1, 0, address(0)));
    }

    function test_publishRelease_allSigners() public {
        uint256[] memory all = new uint256[](3);
        (all[0], all[1], all[2]) = (0, 1, 2);
        IUpdateRegistry.Manifest memory m = _manifest(1, 0, address(0));
        bytes32 id = registry.releaseId(m);
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ReleasePublished(id, modelId, 1, m, 7);
        registry.publishRelease(m, _approval(id, all));
    }

    function test_RevertWhen_approval_duplicateSignature() public {
        IUpdateRegistry.Approval memory a = _approval(_m1Hash(), _pair(1, 1));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignature.selector, 1, signers[1]));
        _publishWith(a);
    }

    function test_RevertWhen_approval_unsortedSignatures() public {
        IUpdateRegistry.Approval memory a = _approval(_m1Hash(), _pair(2, 0));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignature.selector, 1, signers[0]));
        _publishWith(a);
    }

    function test_RevertWhen_approval_nonMember() public {
        (uint256[] memory ok,) = _sortedKeys(0xDEAD, 1);
        bytes32 digest = _digest(_m1Hash());
        bytes memory sigs = bytes.concat(_signCompact(keys[0], digest), _signCompact(ok[0], digest));
        address outsider = vm.addr(ok[0]);
        IUpdateRegistry.Approval memory a = IUpdateRegistry.Approval(signers, 2, sigs);
        if (outsider > signers[0]) {
            vm.expectRevert(
                abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignature.selector, 1, outsider)
            );
        } else {
            vm.expectRevert();
        }
        _publishWith(a);
    }

    function test_RevertWhen_approval_wrongThreshold() public {
        IUpdateRegistry.Approval memory a = _approval(_m1Hash(), _pair(0, 2));
        a.threshold = 1;
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistrySignerSetMismatch.selector,
                mfId,
                registry.signersHash(signers, 2),
                registry.signersHash(signers, 1)
            )
        );
        _publishWith(a);
    }

    function test_RevertWhen_approval_badLength() public {
        IUpdateRegistry.Approval memory a = _approval(_m1Hash(), _pair(0, 2));
        a.signatures = bytes.concat(a.signatures, hex"00");
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistrySignatureLength.selector, 129));
        _publishWith(a);
    }

    function test_RevertWhen_approval_malleableSignature() public {
        bytes32 digest = _digest(_m1Hash());
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[0], digest);
        // The high-s twin (n - s, flipped parity) of a valid signature must never count as the signer: it is
        // either rejected as malleable (s in (n/2, 2^255)) or, not encodable in 255 bits, recovers someone else.
        uint256 hs = SECP256K1_N - uint256(s);
        uint256 parity = v == 27 ? 1 : 0;
        bytes memory twin = abi.encodePacked(r, bytes32(hs | (parity << 255)));
        bytes memory sigs = bytes.concat(twin, _signCompact(keys[2], digest));
        vm.expectRevert();
        _publishWith(IUpdateRegistry.Approval(signers, 2, sigs));
        // The canonical form is accepted.
        _publishWith(
            IUpdateRegistry.Approval(
                signers, 2, bytes.concat(_signCompact(keys[0], digest), _signCompact(keys[2], digest))
            )
        );
    }

    function test_RevertWhen_approval_garbageSignature() public {
        bytes memory sigs = bytes.concat(new bytes(64), _signCompact(keys[2], _digest(_m1Hash())));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidSignature.selector, 0, address(0)));
        _publishWith(IUpdateRegistry.Approval(signers, 2, sigs));
    }

    function testFuzz_approval_highSRejected(uint256 s) public {
        // s in (n/2, 2^255): the high half that a compact signature can encode (bit 255 is the y parity).
        s = bound(s, HALF_N + 1, (1 << 255) - 1);
        bytes memory sigs = bytes.concat(abi.encodePacked(bytes32(uint256(1)), bytes32(s)), new bytes(64));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistrySignatureMalleable.selector, 0));
        _publishWith(IUpdateRegistry.Approval(signers, 2, sigs));
    }

    function testFuzz_approval_subsets(uint8 bits) public {
        // Any subset of the 2-of-3 set publishes iff it has at least two members.
        uint256[] memory which = new uint256[](3);
        uint256 n;
        for (uint256 i; i < 3; ++i) {
            if (bits & (1 << i) != 0) which[n++] = i;
        }
        uint256[] memory w = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            w[i] = which[i];
        }
        IUpdateRegistry.Approval memory a = _approval(_m1Hash(), w);
        if (n < 2) {
            vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotEnoughSignatures.selector, n, 2));
        }
        _publishWith(a);
    }

    // ---------------------------------------------------------------- updateManufacturer / setParamsCid

    function test_updateManufacturer() public {
        bytes32 h = keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(0), alice, bob));
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ManufacturerUpdated(mfId, 0, alice, bob);
        registry.updateManufacturer(mfId, alice, bob, _approve(h));
        IUpdateRegistry.Manufacturer memory m = registry.manufacturer(mfId);
        assertEq(m.operator, alice);
        assertEq(m.payee, bob);
        assertEq(m.nonce, 1);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotOperator.selector, mfId, operator));
        registry.defineModel(mfId, "y", 0);
    }

    function test_RevertWhen_updateManufacturer_replayed() public {
        bytes32 h = keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(0), alice, bob));
        IUpdateRegistry.Approval memory a = _approve(h);
        registry.updateManufacturer(mfId, alice, bob, a);
        registry.updateManufacturer(
            mfId, operator, payee, _approve(keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(1), operator, payee)))
        );
        // The nonce moved on: the first approval no longer recovers to members of the set.
        vm.expectRevert();
        registry.updateManufacturer(mfId, alice, bob, a);
        assertEq(registry.manufacturer(mfId).operator, operator);
    }

    function test_RevertWhen_rotateSigners_signedByNewSetOnly() public {
        // Stolen keys cannot install themselves: the approval must come from the current set.
        (uint256[] memory nk, address[] memory ns) = _sortedKeys(0xBAD, 3);
        bytes32 h = _rotateHash(mfId, 0, ns, 2);
        IUpdateRegistry.Approval memory a = _approvalBy(h, nk, ns, 2, _pair(0, 1));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistrySignerSetMismatch.selector,
                mfId,
                registry.signersHash(signers, 2),
                registry.signersHash(ns, 2)
            )
        );
        registry.rotateSigners(mfId, ns, 2, a);
        // Current set hash with outsiders' signatures fails on membership.
        a.signers = signers;
        vm.expectRevert();
        registry.rotateSigners(mfId, ns, 2, a);
    }

    function test_RevertWhen_updateManufacturer_zeroAddress() public {
        IUpdateRegistry.Approval memory a =
            _approve(keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(0), alice, address(0))));
        vm.expectRevert(IUpdateRegistry.UpdateRegistryZeroAddress.selector);
        registry.updateManufacturer(mfId, alice, address(0), a);
    }

    function test_RevertWhen_updateManufacturer_unknown() public {
        IUpdateRegistry.Approval memory a =
            _approve(keccak256(abi.encode(UPDATE_TYPEHASH, uint32(5), uint64(0), alice, bob)));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryUnknownManufacturer.selector, 5));
        registry.updateManufacturer(5, alice, bob, a);
    }

    function test_setParamsCid() public {
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ParamsCidSet(mfId, "bafynew");
        vm.prank(operator);
        registry.setParamsCid(mfId, "bafynew");
    }

    function test_RevertWhen_setParamsCid_notOperator() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotOperator.selector, mfId, alice));
        vm.prank(alice);
        registry.setParamsCid(mfId, "x");
    }

    // ---------------------------------------------------------------- models

    function test_defineModel() public {
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ModelDefined(2, mfId, 5, "door-y");
        vm.prank(operator);
        uint32 id = registry.defineModel(mfId, "door-y", 5);
        assertEq(id, 2);
        IUpdateRegistry.Model memory m = registry.model(id);
        assertEq(m.manufacturerId, mfId);
        assertEq(m.minVersion, 5);
        assertEq(m.latestVersion, 0);
    }

    function test_RevertWhen_defineModel_notOperator() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotOperator.selector, 7, operator));
        vm.prank(operator);
        registry.defineModel(7, "x", 0);
    }

    function test_raiseFloor() public {
        bytes32 h = keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, uint64(4)));
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.FloorRaised(modelId, 4);
        registry.raiseFloor(modelId, 4, _approve(h));
        assertEq(registry.model(modelId).minVersion, 4);
        // Publishing below the new floor fails.
        IUpdateRegistry.Manifest memory m = _manifest(3, 0, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryVersionBelowFloor.selector, modelId, 4, 3));
        registry.publishRelease(m, a);
    }

    function test_RevertWhen_raiseFloor_notIncreasing() public {
        IUpdateRegistry.Approval memory a = _approve(keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, uint64(1))));
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryFloorNotIncreasing.selector, modelId, 1, 1)
        );
        registry.raiseFloor(modelId, 1, a);
    }

    function test_RevertWhen_raiseFloor_unknownModel() public {
        IUpdateRegistry.Approval memory a = _approve(keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, uint32(9), uint64(2))));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryUnknownModel.selector, 9));
        registry.raiseFloor(9, 2, a);
    }

    function test_RevertWhen_raiseFloor_oneSigner() public {
        IUpdateRegistry.Approval memory a =
            _approval(keccak256(abi.encode(RAISE_FLOOR_TYPEHASH, modelId, uint64(2))), _one(0));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotEnoughSignatures.selector, 1, 2));
        registry.raiseFloor(modelId, 2, a);
    }

    // ---------------------------------------------------------------- provisioning and claims

    function test_provisionDevices() public {
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.DevicesProvisioned(1, mfId, 0, 10, bytes32(uint256(1)), "cid");
        vm.prank(operator);
        (uint64 b, uint64 first) = registry.provisionDevices(mfId, bytes32(uint256(1)), 10, "cid");
        assertEq(b, 1);
        assertEq(first, 0);
        vm.prank(operator);
        (b, first) = registry.provisionDevices(mfId, bytes32(uint256(2)), 5, "cid");
        assertEq(b, 2);
        assertEq(first, 10);
        IUpdateRegistry.Batch memory bt = registry.batch(2);
        assertEq(bt.root, bytes32(uint256(2)));
        assertEq(bt.manufacturerId, mfId);
        assertEq(bt.firstIndex, 10);
        assertEq(bt.count, 5);
        assertEq(registry.counters().devices, 15);
        assertEq(registry.counters().batches, 2);
    }

    function test_RevertWhen_provisionDevices_empty() public {
        vm.startPrank(operator);
        vm.expectRevert(IUpdateRegistry.UpdateRegistryEmptyBatch.selector);
        registry.provisionDevices(mfId, bytes32(0), 10, "");
        vm.expectRevert(IUpdateRegistry.UpdateRegistryEmptyBatch.selector);
        registry.provisionDevices(mfId, bytes32(uint256(1)), 0, "");
        vm.stopPrank();
    }

    function test_RevertWhen_provisionDevices_notOperator() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotOperator.selector, mfId, alice));
        vm.prank(alice);
        registry.provisionDevices(mfId, bytes32(uint256(1)), 1, "");
    }

    function test_claimDevice() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(5);
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.DeviceClaimed(first + 3, alice, vm.addr(_deviceKey(3)), modelId, b);
        vm.prank(bob); // anyone may submit
        _claim(b, first, leaves, 3, alice);
        IUpdateRegistry.Device memory d = registry.device(first + 3);
        assertEq(d.owner, alice);
        assertEq(d.modelId, modelId);
        assertTrue(d.status == IUpdateRegistry.DeviceStatus.Active);
    }

    function testFuzz_claimDevice_anyPosition(uint256 count, uint256 pos) public {
        count = bound(count, 1, 40);
        pos = bound(pos, 0, count - 1);
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(count);
        _claim(b, first, leaves, pos, alice);
        assertEq(registry.device(first + uint64(pos)).owner, alice);
    }

    function test_claimDevice_treeBuiltBeforeAnotherBatchLands() public {
        // The operator builds its tree while index 0.. is free; another batch takes those indexes first.
        bytes32[] memory leaves = _leaves(4, modelId);
        vm.prank(operator);
        registry.provisionDevices(mfId, bytes32(uint256(1)), 7, "someone-else-first");
        vm.prank(operator);
        (uint64 b, uint64 first) = registry.provisionDevices(mfId, Merkle.root(leaves), 4, "bafyleaves");
        assertEq(first, 7);
        _claim(b, first, leaves, 2, alice);
        assertEq(registry.device(first + 2).owner, alice);
    }

    function test_RevertWhen_claimDevice_twice() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(2);
        _claim(b, first, leaves, 1, alice);
        (uint64 index, address dev, bytes32[] memory proof, bytes memory sig) = _claimArgs(first, leaves, 1, bob);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistryDeviceNotClaimable.selector, index, IUpdateRegistry.DeviceStatus.Active
            )
        );
        registry.claimDevice(b, index, dev, modelId, bob, proof, sig);
    }

    function test_RevertWhen_claimDevice_frontRunOwner() public {
        // A front-runner copies the device's signature but names itself as owner.
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(2);
        address dev = vm.addr(_deviceKey(0));
        bytes memory sig = _signCompact(_deviceKey(0), _digest(keccak256(abi.encode(CLAIM_TYPEHASH, alice, first))));
        bytes32[] memory proof = Merkle.proof(leaves, 0);
        vm.expectRevert();
        registry.claimDevice(b, first, dev, modelId, bob, proof, sig);
        registry.claimDevice(b, first, dev, modelId, alice, proof, sig);
    }

    function test_RevertWhen_claimDevice_wrongDeviceKey() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(2);
        address dev = vm.addr(_deviceKey(0));
        bytes memory sig = _signCompact(_deviceKey(1), _digest(keccak256(abi.encode(CLAIM_TYPEHASH, alice, first))));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistryInvalidDeviceSignature.selector, first, dev, vm.addr(_deviceKey(1))
            )
        );
        registry.claimDevice(b, first, dev, modelId, alice, Merkle.proof(leaves, 0), sig);
    }

    function test_RevertWhen_claimDevice_shortSignature() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(2);
        address dev = vm.addr(_deviceKey(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistryInvalidDeviceSignature.selector, first, dev, address(0)
            )
        );
        registry.claimDevice(b, first, dev, modelId, alice, Merkle.proof(leaves, 0), hex"01");
    }

    function test_RevertWhen_claimDevice_invalidProof() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(4);
        address dev = vm.addr(_deviceKey(0));
        bytes memory sig = _signCompact(_deviceKey(0), _digest(keccak256(abi.encode(CLAIM_TYPEHASH, alice, first))));
        bytes32[] memory proof = Merkle.proof(leaves, 1);
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryInvalidProof.selector, b, first));
        registry.claimDevice(b, first, dev, modelId, alice, proof, sig);
    }

    function test_RevertWhen_claimDevice_unknownBatch() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryUnknownBatch.selector, 3));
        registry.claimDevice(3, 0, alice, modelId, alice, new bytes32[](0), "");
    }

    function test_RevertWhen_claimDevice_outsideBatch() public {
        (uint64 b, uint64 first,) = _provision(2);
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryDeviceNotInBatch.selector, b, first + 2));
        registry.claimDevice(b, first + 2, alice, modelId, alice, new bytes32[](0), "");
    }

    function test_RevertWhen_claimDevice_foreignModel() public {
        (uint64 b, uint64 first,) = _provision(2);
        vm.prank(alice);
        uint32 other = registry.registerManufacturer("Other", alice, alice, signers, 1, "");
        vm.prank(alice);
        uint32 foreign = registry.defineModel(other, "m", 0);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryModelManufacturerMismatch.selector, foreign, mfId)
        );
        registry.claimDevice(b, first, alice, foreign, alice, new bytes32[](0), "");
    }

    function test_RevertWhen_claimDevice_zeroOwner() public {
        vm.expectRevert(IUpdateRegistry.UpdateRegistryZeroAddress.selector);
        registry.claimDevice(1, 0, alice, modelId, address(0), new bytes32[](0), "");
    }

    function test_transferDevice() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(1);
        _claim(b, first, leaves, 0, alice);
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.DeviceTransferred(first, alice, bob);
        vm.prank(alice);
        registry.transferDevice(first, bob);
        assertEq(registry.device(first).owner, bob);
    }

    function test_RevertWhen_transferDevice_notOwner() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(1);
        _claim(b, first, leaves, 0, alice);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotDeviceOwner.selector, first, alice, bob)
        );
        vm.prank(bob);
        registry.transferDevice(first, bob);
    }

    function test_RevertWhen_transferDevice_unclaimed() public {
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotDeviceOwner.selector, 0, address(0), address(0))
        );
        vm.prank(address(0));
        registry.transferDevice(0, bob);
    }

    function test_RevertWhen_transferDevice_toZero() public {
        vm.expectRevert(IUpdateRegistry.UpdateRegistryZeroAddress.selector);
        registry.transferDevice(0, address(0));
    }

    function test_setDeviceActive() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(2);
        _claim(b, first, leaves, 0, alice);
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.DeviceStatusChanged(first, IUpdateRegistry.DeviceStatus.Deactivated);
        vm.prank(operator);
        registry.setDeviceActive(b, first, false);
        assertTrue(registry.device(first).status == IUpdateRegistry.DeviceStatus.Deactivated);
        assertEq(registry.device(first).owner, alice);
        vm.prank(operator);
        registry.setDeviceActive(b, first, true);
        assertTrue(registry.device(first).status == IUpdateRegistry.DeviceStatus.Active);
    }

    function test_setDeviceActive_unclaimedBlocksClaim() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(2);
        vm.prank(operator);
        registry.setDeviceActive(b, first + 1, false);
        (uint64 index, address dev, bytes32[] memory proof, bytes memory sig) = _claimArgs(first, leaves, 1, alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistryDeviceNotClaimable.selector,
                first + 1,
                IUpdateRegistry.DeviceStatus.Deactivated
            )
        );
        registry.claimDevice(b, index, dev, modelId, alice, proof, sig);
        vm.prank(operator);
        registry.setDeviceActive(b, first + 1, true);
        assertTrue(registry.device(first + 1).status == IUpdateRegistry.DeviceStatus.Unclaimed);
        _claim(b, first, leaves, 1, alice);
    }

    function test_RevertWhen_setDeviceActive_notOperator() public {
        (uint64 b, uint64 first,) = _provision(1);
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotOperator.selector, mfId, alice));
        vm.prank(alice);
        registry.setDeviceActive(b, first, false);
    }

    function test_RevertWhen_setDeviceActive_unknownBatch() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryUnknownBatch.selector, 4));
        vm.prank(operator);
        registry.setDeviceActive(4, 0, false);
    }

    function test_RevertWhen_setDeviceActive_outsideBatch() public {
        (uint64 b, uint64 first,) = _provision(1);
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryDeviceNotInBatch.selector, b, first + 1));
        vm.prank(operator);
        registry.setDeviceActive(b, first + 1, false);
    }

    // ---------------------------------------------------------------- releases

    function test_publishRelease() public {
        IUpdateRegistry.Manifest memory m = _manifest(3, 1 ether, address(0));
        bytes32 expected = registry.releaseId(m);
        IUpdateRegistry.Approval memory a = _approve(expected);
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ReleasePublished(expected, modelId, 3, m, 5);
        vm.prank(bob); // relayer
        bytes32 id = registry.publishRelease(m, a);
        assertEq(id, expected);
        IUpdateRegistry.Release memory r = registry.release(id);
        assertEq(r.version, 3);
        assertEq(r.modelId, modelId);
        assertEq(r.publishedAt, block.timestamp);
        assertEq(r.revokedAt, 0);
        assertEq(r.rolloutBps, 10_000);
        assertEq(registry.model(modelId).latestVersion, 3);
        assertEq(registry.model(modelId).minVersion, 1);
    }

    function test_publishRelease_emptyAndLongCid() public {
        IUpdateRegistry.Manifest memory m = _manifest(1, 0, address(0));
        m.bundleCid = "";
        bytes32 id = registry.releaseId(m);
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ReleasePublished(id, modelId, 1, m, 5);
        registry.publishRelease(m, _approve(id));
        m = _manifest(2, 0, address(0));
        m.bundleCid = bytes("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi-and-some-more-bytes");
        id = registry.releaseId(m);
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ReleasePublished(id, modelId, 2, m, 5);
        registry.publishRelease(m, _approve(id));
    }

    function test_releaseId_isEip712StructHash() public view {
        IUpdateRegistry.Manifest memory m = _manifest(1, 5, alice);
        bytes32 typeHash = keccak256(
            "Manifest(uint32 modelId,uint64 version,bytes32 bundleSha256,uint64 bundleSize,bytes bundleCid,bytes32 imageSha256,uint128 price,address paymentToken,bytes32 policyId,uint64 expiry,bytes32 metadataHash)"
        );
        bytes32 expected = keccak256(
            abi.encode(
                typeHash,
                m.modelId,
                m.version,
                m.bundleSha256,
                m.bundleSize,
                keccak256(m.bundleCid),
                m.imageSha256,
                m.price,
                m.paymentToken,
                m.policyId,
                m.expiry,
                m.metadataHash
            )
        );
        assertEq(registry.releaseId(m), expected);
    }

    function test_RevertWhen_publishRelease_dirtyField() public {
        IUpdateRegistry.Manifest memory m = _manifest(1, 0, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        bytes memory cd = abi.encodeCall(registry.publishRelease, (m, a));
        // Set a high bit in the uint64 `bundleSize` word (head of the manifest at 4 + 0x40 + 3 * 0x20).
        cd[4 + 0x40 + 0x60] = 0x01;
        (bool ok, bytes memory ret) = address(registry).call(cd);
        assertFalse(ok);
        assertEq(
            keccak256(ret),
            keccak256(
                abi.encodeWithSelector(
                    ManifestHash.ManifestHashDirtyField.selector, 3, (uint256(1) << 248) | m.bundleSize
                )
            )
        );
    }

    /// @dev Each checked field names itself: its position in `Manifest` and the word found (the first dirty one).
    function test_RevertWhen_releaseId_dirtyFields() public {
        IUpdateRegistry.Manifest memory m = _manifest(1, 0, address(0));
        uint256[6] memory fields = [uint256(0), 1, 3, 6, 7, 9];
        uint256[6] memory bits = [uint256(32), 64, 64, 128, 160, 64];
        for (uint256 i; i < 6; ++i) {
            bytes memory cd = abi.encodeCall(registry.releaseId, (m));
            uint256 pos = 4 + 0x20 + 32 * fields[i];
            uint256 word;
            assembly ("memory-safe") {
                word := or(mload(add(add(cd, 0x20), pos)), shl(mload(add(bits, mul(i, 0x20))), 1))
                mstore(add(add(cd, 0x20), pos), word)
            }
            (bool ok, bytes memory ret) = address(registry).call(cd);
            assertFalse(ok);
            assertEq(
                keccak256(ret),
                keccak256(abi.encodeWithSelector(ManifestHash.ManifestHashDirtyField.selector, fields[i], word))
            );
        }
    }

    function test_RevertWhen_publishRelease_versionNotIncreasing() public {
        _publish(_manifest(2, 0, address(0)));
        IUpdateRegistry.Manifest memory m = _manifest(2, 1, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryVersionNotIncreasing.selector, modelId, 2, 2)
        );
        registry.publishRelease(m, a);
    }

    function test_RevertWhen_publishRelease_samePublishedTwice() public {
        IUpdateRegistry.Manifest memory m = _manifest(2, 0, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        registry.publishRelease(m, a);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryVersionNotIncreasing.selector, modelId, 2, 2)
        );
        registry.publishRelease(m, a);
    }

    function test_RevertWhen_publishRelease_belowFloor() public {
        IUpdateRegistry.Manifest memory m = _manifest(0, 0, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryVersionNotIncreasing.selector, modelId, 0, 0)
        );
        registry.publishRelease(m, a);
    }

    function test_RevertWhen_publishRelease_expired() public {
        IUpdateRegistry.Manifest memory m = _manifest(1, 0, address(0));
        m.expiry = uint64(block.timestamp);
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryExpired.selector, m.expiry, block.timestamp)
        );
        registry.publishRelease(m, a);
    }

    function test_RevertWhen_publishRelease_unknownModel() public {
        IUpdateRegistry.Manifest memory m = _manifestFor(42, 1, 0, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryUnknownModel.selector, 42));
        registry.publishRelease(m, a);
    }

    function test_RevertWhen_publishRelease_tamperedManifest() public {
        IUpdateRegistry.Manifest memory m = _manifest(1, 0, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        m.bundleCid = "bafy-evil";
        vm.expectRevert();
        registry.publishRelease(m, a);
    }

    function test_RevertWhen_publishRelease_otherChain() public {
        IUpdateRegistry.Manifest memory m = _manifest(1, 0, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        bytes32 before = registry.DOMAIN_SEPARATOR();
        vm.chainId(999);
        assertTrue(registry.DOMAIN_SEPARATOR() != before);
        vm.expectRevert();
        registry.publishRelease(m, a);
    }

    function testFuzz_publishRelease_versionsIncrease(uint64 v1, uint64 v2) public {
        v1 = uint64(bound(v1, 1, type(uint64).max - 1));
        _publish(_manifest(v1, 0, address(0)));
        IUpdateRegistry.Manifest memory m = _manifest(v2, 0, address(0));
        IUpdateRegistry.Approval memory a = _approve(registry.releaseId(m));
        if (v2 <= v1) {
            vm.expectRevert(
                abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryVersionNotIncreasing.selector, modelId, v1, v2)
            );
        }
        registry.publishRelease(m, a);
        assertEq(registry.model(modelId).latestVersion, v2 > v1 ? v2 : v1);
    }

    function test_revokeRelease() public {
        bytes32 id = _publish(_manifest(1, 0, address(0)));
        vm.warp(block.timestamp + 100);
        bytes32 h = keccak256(abi.encode(REVOKE_TYPEHASH, id, keccak256("CVE-2026-0001")));
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ReleaseRevoked(id, modelId, false, "CVE-2026-0001");
        registry.revokeRelease(id, "CVE-2026-0001", _approve(h));
        assertEq(registry.release(id).revokedAt, block.timestamp);
        IUpdateRegistry.Approval memory a = _approve(h);
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryReleaseRevoked.selector, id));
        registry.revokeRelease(id, "CVE-2026-0001", a);
    }

    function test_RevertWhen_revokeRelease_unknown() public {
        IUpdateRegistry.Approval memory a = _approve(keccak256(abi.encode(REVOKE_TYPEHASH, bytes32(0), keccak256(""))));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryUnknownRelease.selector, bytes32(0)));
        registry.revokeRelease(bytes32(0), "", a);
    }

    function test_RevertWhen_revokeRelease_otherReason() public {
        bytes32 id = _publish(_manifest(1, 0, address(0)));
        IUpdateRegistry.Approval memory a = _approve(keccak256(abi.encode(REVOKE_TYPEHASH, id, keccak256("a"))));
        vm.expectRevert();
        registry.revokeRelease(id, "b", a);
    }

    function test_emergencyRevoke() public {
        bytes32 id = _publish(_manifest(1, 0, address(0)));
        vm.expectEmit(address(registry));
        emit IUpdateRegistry.ReleaseRevoked(id, modelId, true, "bricking devices");
        vm.prank(operator);
        registry.emergencyRevoke(id, "bricking devices");
        assertEq(registry.release(id).revokedAt, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryReleaseRevoked.selector, id));
        vm.prank(operator);
        registry.emergencyRevoke(id, "again");
    }

    function test_RevertWhen_emergencyRevoke_notOperator() public {
        bytes32 id = _publish(_manifest(1, 0, address(0)));
        vm.expectRevert(abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotOperator.selector, mfId, alice));
        vm.prank(alice);
        registry.emergencyRevoke(id, "x");
    }

    // ---------------------------------------------------------------- checkDevices

    function test_checkDevices() public {
        (uint64 b, uint64 first, bytes32[] memory leaves) = _provision(3);
        _claim(b, first, leaves, 0, alice);
        _claim(b, first, leaves, 1, alice);
        uint64[] memory idx = new uint64[](2);
        (idx[0], idx[1]) = (first, first + 1);
        registry.checkDevices(alice, modelId, true, idx);
        registry.checkDevices(address(0), modelId, true, idx);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotDeviceOwner.selector, first, alice, bob)
        );
        registry.checkDevices(bob, modelId, true, idx);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryDeviceModelMismatch.selector, first, modelId, 77)
        );
        registry.checkDevices(alice, 77, true, idx);
        vm.prank(operator);
        registry.setDeviceActive(b, first + 1, false);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistryDeviceInactive.selector,
                first + 1,
                IUpdateRegistry.DeviceStatus.Deactivated
            )
        );
        registry.checkDevices(alice, modelId, true, idx);
        registry.checkDevices(alice, modelId, false, idx);
        idx[1] = first + 2; // unclaimed
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistryNotDeviceOwner.selector, first + 2, address(0), address(0)
            )
        );
        registry.checkDevices(address(0), modelId, false, idx);
    }

    function test_domainSeparator() public view {
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("OTA Ledger UpdateRegistry"),
                keccak256("1"),
                block.chainid,
                address(registry)
            )
        );
        assertEq(registry.DOMAIN_SEPARATOR(), expected);
    }

    function test_constants() public {
        assertEq(registry.MAX_SIGNERS(), 32);
        assertEq(registry.FULL_ROLLOUT_BPS(), 10_000);
        assertTrue(address(new UpdateRegistry()) != address(0));
    }
}
