// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Vm} from "./Vm.sol";

/// @notice Minimal test base: the cheatcode handle, assertions, `bound`, and invariant target selection.
abstract contract Test {
    /// @dev The cheatcode contract address: address(uint160(uint256(keccak256("hevm cheat code")))).
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    /// @dev forge-std's `FuzzSelector`: selectors of one target the invariant fuzzer may call.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) revert(string.concat("assertion failed: ", message));
    }

    function assertTrue(bool condition) internal pure {
        assertTrue(condition, "expected true");
    }

    function assertFalse(bool condition) internal pure {
        assertTrue(!condition, "expected false");
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        if (a != b) revert(string.concat("assertEq(uint256) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(uint256 a, uint256 b, string memory message) internal pure {
        if (a != b) {
            revert(string.concat("assertEq failed: ", message, ": ", vm.toString(a), " != ", vm.toString(b)));
        }
    }

    function assertEq(address a, address b) internal pure {
        if (a != b) revert(string.concat("assertEq(address) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bytes32 a, bytes32 b) internal pure {
        if (a != b) revert(string.concat("assertEq(bytes32) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bool a, bool b) internal pure {
        if (a != b) revert(string.concat("assertEq(bool) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertLe(uint256 a, uint256 b, string memory message) internal pure {
        if (a > b) revert(string.concat("assertLe failed: ", message, ": ", vm.toString(a), " > ", vm.toString(b)));
    }

    /// @dev Maps `x` into [min, max] (inclusive) uniformly enough for fuzzing, keeping small values unchanged.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        _targetSelectors.push(selector);
    }

    /// @dev Read by forge's invariant runner.
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    /// @dev Read by forge's invariant runner.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }
}
