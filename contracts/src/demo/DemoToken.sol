// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title DemoToken
/// @notice The ERC-20 that `otaledger demo --token` prices its release in: "Demo USD" (dUSD), six decimals like
///         the common stablecoins, with EIP-2612 permits so an owner can pay in one transaction. Not part of the
///         system's authority: the whole supply is minted once, to `holder`, and nobody can mint more.
contract DemoToken is ERC20Permit {
    /// @param holder Receives the whole supply.
    /// @param supply The whole supply, in the smallest unit (1 dUSD = 1e6).
    constructor(address holder, uint256 supply) ERC20("Demo USD", "dUSD") ERC20Permit("Demo USD") {
        _mint(holder, supply);
    }

    /// @inheritdoc ERC20
    function decimals() public pure override returns (uint8) {
        return 6;
    }
}
