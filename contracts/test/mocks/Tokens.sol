// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @notice A standard ERC-20 with a public mint.
contract MockERC20 is ERC20 {
    constructor() ERC20("Mock", "MCK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @notice USDT style: `transfer` and `transferFrom` return nothing.
contract NoReturnToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
    }

    function transfer(address to, uint256 amount) external {
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
    }

    function transferFrom(address from, address to, uint256 amount) external {
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
    }
}

/// @notice Takes a 1% fee on every transfer.
contract FeeOnTransferToken is MockERC20 {
    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0xFEE), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}

/// @notice Returns false instead of transferring.
contract FalseToken is MockERC20 {
    function transferFrom(address, address, uint256) public pure override returns (bool) {
        return false;
    }

    function transfer(address, uint256) public pure override returns (bool) {
        return false;
    }
}

/// @notice Reverts every transfer once `broken` is set.
contract RevertingToken is MockERC20 {
    bool public broken;

    function setBroken(bool b) external {
        broken = b;
    }

    function _update(address from, address to, uint256 value) internal override {
        require(!broken, "RevertingToken: broken");
        super._update(from, to, value);
    }
}

/// @notice Calls back into a target during `transferFrom` and `transfer` (ERC-777 style hook).
contract ReentrantToken is MockERC20 {
    address public target;
    bytes public data;
    bool public reentered;
    bytes public reentryError;

    function arm(address target_, bytes calldata data_) external {
        target = target_;
        data = data_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (target != address(0) && from != address(0)) {
            address t = target;
            target = address(0);
            (bool ok, bytes memory ret) = t.call(data);
            reentered = ok;
            reentryError = ret;
        }
    }
}

/// @notice An ETH receiver that re-enters a target when paid, recording the outcome.
contract ReentrantReceiver {
    address public target;
    bytes public data;
    bool public reentered;
    bytes public reentryError;

    function arm(address target_, bytes calldata data_) external {
        target = target_;
        data = data_;
    }

    function call(address to, bytes calldata data_) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = to.call{value: msg.value}(data_);
        require(ok, "ReentrantReceiver: call failed");
        return ret;
    }

    receive() external payable {
        if (target != address(0)) {
            address t = target;
            target = address(0);
            (bool ok, bytes memory ret) = t.call(data);
            reentered = ok;
            reentryError = ret;
        }
    }
}

/// @notice Rejects ETH.
contract EthRejecter {
    receive() external payable {
        revert("no ETH");
    }
}

/// @notice A standard ERC-20 with EIP-2612 permit and a public mint.
contract PermitERC20 is ERC20Permit {
    constructor() ERC20("Permit Mock", "PMK") ERC20Permit("Permit Mock") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @notice A permit token that takes a 1% fee on every transfer.
contract FeeOnTransferPermitToken is PermitERC20 {
    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0xFEE), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}
