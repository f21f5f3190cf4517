// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "../src/interfaces/IUpdateRegistry.sol";
import {Base} from "./Base.t.sol";
import {Merkle} from "./utils/Merkle.sol";

// Gas benchmarks (not tests of behaviour): each test makes exactly one external call to the contract under test,
// all set-up happens in setUp(), so `forge test --gas-report` reports that call as one transaction (21,000
// intrinsic + calldata included). Measured with a 2-of-3 signer set. Numbers: docs/benchmarks.md.

/// @notice publishRelease of a model's first release.
contract GasPublishFirst is Base {
    IUpdateRegistry.Manifest internal m;
    IUpdateRegistry.Approval internal a;

    function setUp() public override {
        super.setUp();
        m = _manifest(1, 0.01 ether, address(0));
        a = _approve(registry.releaseId(m));
    }

    function test_gas_publishRelease_first() public {
        registry.publishRelease(m, a);
    }
}

/// @notice publishRelease of a model's next release.
contract GasPublishNext is Base {
    IUpdateRegistry.Manifest internal m;
    IUpdateRegistry.Approval internal a;

    function setUp() public override {
        super.setUp();
        _publish(_manifest(1, 0.01 ether, address(0)));
        m = _manifest(2, 0.01 ether, address(0));
        a = _approve(registry.releaseId(m));
    }

    function test_gas_publishRelease_next() public {
        registry.publishRelease(m, a);
    }
}

/// @notice provisionDevices of a batch of 1,000 devices.
contract GasProvision is Base {
    function test_gas_provisionDevices_1000() public {
        vm.prank(operator);
        registry.provisionDevices(
            mfId, keccak256("root"), 1000, "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
        );
    }
}

/// @notice rotateSigners from 2-of-3 to another 2-of-3 set.
contract GasRotate is Base {
    address[] internal next;
    IUpdateRegistry.Approval internal a;

    function setUp() public override {
        super.setUp();
        (, next) = _sortedKeys(0xBEEF, 3);
        a = _approve(keccak256(abi.encode(ROTATE_TYPEHASH, mfId, uint64(0), keccak256(abi.encodePacked(next)), 2)));
    }

    function test_gas_rotateSigners() public {
        registry.rotateSigners(mfId, next, 2, a);
    }
}

/// @notice claimDevice of one device of a 1,000-device batch.
contract GasClaim is Base {
    uint64 internal batchId;
    uint64 internal index;
    address internal dev;
    bytes32[] internal proof;
    bytes internal sig;

    function setUp() public override {
        super.setUp();
        bytes32[] memory leaves;
        uint64 first;
        (batchId, first, leaves) = _provision(1000);
        index = first + 500;
        dev = vm.addr(_deviceKey(500));
        proof = _proofOf(leaves, 500);
        sig = _signCompact(_deviceKey(500), _digest(keccak256(abi.encode(CLAIM_TYPEHASH, alice, index))));
    }

    function _proofOf(bytes32[] memory leaves, uint256 i) internal pure returns (bytes32[] memory) {
        return Merkle.proof(leaves, i);
    }

    function test_gas_claimDevice() public {
        registry.claimDevice(batchId, index, dev, modelId, alice, proof, sig);
    }
}

/// @dev Purchases: `n` claimed devices of alice, an ETH release.
abstract contract GasPurchaseBase is Base {
    IUpdateRegistry.Manifest internal m;
    uint64[] internal indexes;

    function _setUpPurchase(uint256 claimed, uint256 buy) internal {
        (uint64 batchId, uint64 first, bytes32[] memory leaves) = _provision(claimed);
        for (uint256 i; i < claimed; ++i) {
            _claim(batchId, first, leaves, i, alice);
        }
        m = _manifest(1, 0.01 ether, address(0));
        _publish(m);
        for (uint256 i; i < buy; ++i) {
            indexes.push(first + uint64(claimed - buy + i));
        }
        vm.deal(alice, 100 ether);
    }
}

/// @notice purchase of one device whose entitlement word is still empty.
contract GasPurchaseOne is GasPurchaseBase {
    function setUp() public override {
        super.setUp();
        _setUpPurchase(1, 1);
    }

    function test_gas_purchase_1() public {
        vm.prank(alice);
        market.purchase{value: 0.01 ether}(m, indexes);
    }
}

/// @notice purchase of one device when devices of its entitlement word already bought the release.
contract GasPurchaseOneWarmWord is GasPurchaseBase {
    function setUp() public override {
        super.setUp();
        _setUpPurchase(2, 1);
        uint64[] memory other = new uint64[](1);
        other[0] = indexes[0] - 1;
        vm.prank(alice);
        market.purchase{value: 0.01 ether}(m, other);
    }

    function test_gas_purchase_1_warmWord() public {
        vm.prank(alice);
        market.purchase{value: 0.01 ether}(m, indexes);
    }
}

/// @notice purchase of 100 devices.
contract GasPurchaseHundred is GasPurchaseBase {
    function setUp() public override {
        super.setUp();
        _setUpPurchase(100, 100);
    }

    function test_gas_purchase_100() public {
        vm.prank(alice);
        market.purchase{value: 1 ether}(m, indexes);
    }
}

/// @notice purchase of one device whose entitlement word is empty, for a release that already has sales.
contract GasPurchaseOneNewWord is Base {
    IUpdateRegistry.Manifest internal m;
    uint64[] internal indexes;

    function setUp() public override {
        super.setUp();
        // Devices 0 and 256 (different entitlement words) in one batch whose tree holds just those two leaves.
        bytes32[] memory leaves = new bytes32[](2);
        leaves[0] = _leaf(0, vm.addr(_deviceKey(0)), modelId);
        leaves[1] = _leaf(256, vm.addr(_deviceKey(1)), modelId);
        vm.prank(operator);
        (uint64 b,) = registry.provisionDevices(mfId, Merkle.root(leaves), 257, "");
        for (uint256 i; i < 2; ++i) {
            uint64 index = uint64(i * 256);
            bytes memory sig = _signCompact(_deviceKey(i), _digest(keccak256(abi.encode(CLAIM_TYPEHASH, alice, index))));
            registry.claimDevice(b, index, vm.addr(_deviceKey(i)), modelId, alice, Merkle.proof(leaves, i), sig);
        }
        m = _manifest(1, 0.01 ether, address(0));
        _publish(m);
        vm.deal(alice, 1 ether);
        uint64[] memory other = new uint64[](1);
        vm.prank(alice);
        market.purchase{value: 0.01 ether}(m, other);
        indexes.push(256);
    }

    function test_gas_purchase_1_newWord() public {
        vm.prank(alice);
        market.purchase{value: 0.01 ether}(m, indexes);
    }
}
