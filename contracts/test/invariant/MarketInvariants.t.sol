// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "../../src/interfaces/IUpdateRegistry.sol";
import {Test} from "../utils/Test.sol";
import {MarketHandler} from "./MarketHandler.sol";

contract MarketInvariants is Test {
    MarketHandler internal handler;

    function setUp() public {
        vm.warp(1_750_000_000);
        handler = new MarketHandler();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](7);
        selectors[0] = MarketHandler.purchase.selector;
        selectors[1] = MarketHandler.refund.selector;
        selectors[2] = MarketHandler.withdraw.selector;
        selectors[3] = MarketHandler.revoke.selector;
        selectors[4] = MarketHandler.transfer.selector;
        selectors[5] = MarketHandler.warp.selector;
        selectors[6] = MarketHandler.purchaseWithPermit.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice The market's ETH and token balances equal escrowed + withdrawable + refundable, per currency.
    /// forge-config: ci.invariant.runs = 128
    function invariant_balancesEqualBooks() public view {
        uint256 eth;
        uint256 tok;
        uint256 usdt;
        uint256 ptok;
        for (uint256 k; k < handler.RELEASES(); ++k) {
            bytes32 id = handler.ids(k);
            IUpdateRegistry.Manifest memory m = handler.manifest(k);
            IUpdateRegistry.Release memory r = handler.registry().release(id);
            uint256 held = handler.market().escrowOf(id);
            // Classify the release's holding; exactly one class applies.
            uint256 settles = uint256(r.publishedAt) + handler.WINDOW();
            bool refundable = r.revokedAt != 0 && r.revokedAt < settles;
            bool withdrawable = !refundable && block.timestamp >= settles;
            bool escrowed = !refundable && !withdrawable;
            assertTrue((refundable ? 1 : 0) + (withdrawable ? 1 : 0) + (escrowed ? 1 : 0) == 1, "one class per release");
            assertEq(held, handler.ghostEscrow(id), "escrow matches the ghost books");
            if (m.paymentToken == address(0)) eth += held;
            else if (m.paymentToken == address(handler.token())) tok += held;
            else if (m.paymentToken == address(handler.ptoken())) ptok += held;
            else usdt += held;
        }
        assertEq(address(handler.market()).balance, eth, "ETH balance");
        assertEq(handler.token().balanceOf(address(handler.market())), tok, "token balance");
        assertEq(handler.usdt().balanceOf(address(handler.market())), usdt, "no-return token balance");
        assertEq(handler.ptoken().balanceOf(address(handler.market())), ptok, "permit token balance");
    }

    /// @notice An entitlement exists exactly when it was paid for (and not refunded).
    /// forge-config: ci.invariant.runs = 128
    function invariant_entitlementOnlyWithPayment() public view {
        for (uint256 k; k < handler.RELEASES(); ++k) {
            bytes32 id = handler.ids(k);
            for (uint256 i; i < handler.DEVICES(); ++i) {
                uint64 d = handler.first() + uint64(i);
                assertEq(handler.market().isEntitled(id, d), handler.ghostEntitled(id, d));
            }
        }
    }

    /// @notice Every check the handler makes around a call held: wrong amounts refused, skipped devices not
    /// charged, refunds and withdrawals paying exactly the books, and valid purchases, refunds and withdrawals
    /// never refused. (Counted by the handler, not `require`d there: a revert inside a handler is discarded.)
    /// forge-config: ci.invariant.runs = 128
    function invariant_handlerChecksHold() public view {
        assertEq(handler.violations(), 0, handler.firstViolation());
    }
}
