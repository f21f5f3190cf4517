// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {UpdateMarket} from "../src/UpdateMarket.sol";
import {IUpdateMarket} from "../src/interfaces/IUpdateMarket.sol";
import {IUpdateRegistry} from "../src/interfaces/IUpdateRegistry.sol";
import {ManifestHash} from "../src/libraries/ManifestHash.sol";
import {Base} from "./Base.t.sol";
import {
    EthRejecter,
    FalseToken,
    FeeOnTransferToken,
    MockERC20,
    NoReturnToken,
    ReentrantReceiver,
    ReentrantToken,
    RevertingToken
} from "./mocks/Tokens.sol";
import {Merkle} from "./utils/Merkle.sol";

contract UpdateMarketTest is Base {
    uint128 internal constant PRICE = 0.01 ether;

    uint64 internal batchId;
    uint64 internal first;
    uint64 internal nextVersion = 1;
    MockERC20 internal token;

    function setUp() public override {
        super.setUp();
        bytes32[] memory leaves;
        (batchId, first, leaves) = _provision(6);
        for (uint256 i; i < 4; ++i) {
            _claim(batchId, first, leaves, i, alice);
        }
        _claim(batchId, first, leaves, 4, bob);
        token = new MockERC20();
        vm.deal(alice, 100 ether);
        vm.deal(bob, 100 ether);
    }

    // ---------------------------------------------------------------- helpers

    function _release(uint128 price, address tok) internal returns (IUpdateRegistry.Manifest memory m, bytes32 id) {
        m = _manifest(nextVersion++, price, tok);
        id = _publish(m);
    }

    function _idx(uint64 a) internal view returns (uint64[] memory x) {
        x = new uint64[](1);
        x[0] = first + a;
    }

    function _idx(uint64 a, uint64 b) internal view returns (uint64[] memory x) {
        x = new uint64[](2);
        (x[0], x[1]) = (first + a, first + b);
    }

    function _revoke(bytes32 id) internal {
        vm.prank(operator);
        registry.emergencyRevoke(id, "bad");
    }

    // ---------------------------------------------------------------- purchase (ETH)

    function test_purchase_eth() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        uint64[] memory idx = _idx(0, 2);
        vm.expectEmit(address(market));
        emit IUpdateMarket.Purchased(id, alice, idx, 2 * PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: 2 * PRICE}(m, idx);
        assertTrue(market.isEntitled(id, first));
        assertFalse(market.isEntitled(id, first + 1));
        assertTrue(market.isEntitled(id, first + 2));
        assertEq(market.escrowOf(id), 2 * PRICE);
        assertEq(address(market).balance, 2 * PRICE);
        assertEq(market.entitlementWord(id, 0), (1 << first) | (1 << (first + 2)));
        assertEq(market.settlesAt(id), block.timestamp + REFUND_WINDOW);
    }

    function test_purchase_free() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(0, address(0));
        vm.prank(alice);
        market.purchase(m, _idx(1));
        assertTrue(market.isEntitled(id, first + 1));
        assertEq(market.escrowOf(id), 0);
    }

    function test_RevertWhen_purchase_overpaid() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketWrongPayment.selector, PRICE, PRICE + 1));
        vm.prank(alice);
        market.purchase{value: PRICE + 1}(m, _idx(0));
    }

    function test_RevertWhen_purchase_underpaid() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketWrongPayment.selector, 2 * PRICE, PRICE));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0, 1));
    }

    function test_RevertWhen_purchase_noDevices() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.expectRevert(IUpdateMarket.UpdateMarketNoDevices.selector);
        vm.prank(alice);
        market.purchase(m, new uint64[](0));
    }

    function test_RevertWhen_purchase_notAscending() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketDevicesNotAscending.selector, 1, first));
        vm.prank(alice);
        market.purchase{value: 2 * PRICE}(m, _idx(1, 0));
    }

    function test_RevertWhen_purchase_duplicateInList() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketDevicesNotAscending.selector, 1, first + 1));
        vm.prank(alice);
        market.purchase{value: 2 * PRICE}(m, _idx(1, 1));
    }

    function test_RevertWhen_purchase_alreadyEntitled() public {
        // Every listed device already entitled: nothing to buy, the purchase reverts (no money moves).
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: 2 * PRICE}(m, _idx(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketAlreadyEntitled.selector, id, first));
        vm.prank(alice);
        market.purchase{value: 2 * PRICE}(m, _idx(0, 1));
    }

    /// @dev A griefer gifts one of the owner's devices (free when the price is 0, or for one price) while the
    /// owner's purchase of several is pending: the purchase still goes through, the gifted device is skipped and
    /// not charged, and the ETH for it comes back to the owner in the same call.
    function test_purchase_skipsGiftedDevice_eth() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(bob);
        market.purchaseFor{value: PRICE}(m, _idx(1));
        uint256 before = alice.balance;
        uint64[] memory bought = new uint64[](2);
        (bought[0], bought[1]) = (first, first + 2);
        vm.expectEmit(address(market));
        emit IUpdateMarket.Purchased(id, alice, bought, 2 * PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: 3 * PRICE}(m, _idx3(0, 1, 2));
        assertEq(alice.balance, before - 2 * PRICE);
        assertEq(market.escrowOf(id), 3 * PRICE);
        assertEq(address(market).balance, 3 * PRICE);
        for (uint64 i; i < 3; ++i) {
            assertTrue(market.isEntitled(id, first + i));
        }
        // The quote is still the whole list: paying only for the devices left is refused.
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketWrongPayment.selector, 2 * PRICE, PRICE));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(2, 3));
    }

    /// @dev The same with a free release (the griefer's gift costs nothing).
    function test_purchase_skipsGiftedDevice_free() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(0, address(0));
        vm.prank(bob);
        market.purchaseFor(m, _idx(2));
        vm.prank(alice);
        market.purchase(m, _idx3(0, 2, 3));
        assertTrue(market.isEntitled(id, first) && market.isEntitled(id, first + 3));
        assertEq(market.escrowOf(id), 0);
    }

    /// @dev ERC-20: only the devices bought are pulled with `transferFrom`.
    function test_purchase_skipsGiftedDevice_erc20() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(5e6, address(token));
        token.mint(bob, 5e6);
        vm.startPrank(bob);
        token.approve(address(market), 5e6);
        market.purchaseFor(m, _idx(0));
        vm.stopPrank();
        token.mint(alice, 1e9);
        vm.startPrank(alice);
        token.approve(address(market), 15e6);
        uint64[] memory bought = new uint64[](2);
        (bought[0], bought[1]) = (first + 1, first + 3);
        vm.expectEmit(address(market));
        emit IUpdateMarket.Purchased(id, alice, bought, 1e7, address(token));
        market.purchase(m, _idx3(0, 1, 3));
        vm.stopPrank();
        assertEq(token.balanceOf(alice), 1e9 - 1e7);
        assertEq(token.allowance(alice, address(market)), 5e6);
        assertEq(market.escrowOf(id), 15e6);
        assertEq(token.balanceOf(address(market)), 15e6);
    }

    /// @dev A refund after a skip pays each device's price once, to its owner.
    function test_claimRefund_afterSkippedPurchase() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(bob);
        market.purchaseFor{value: PRICE}(m, _idx(1));
        vm.prank(alice);
        market.purchase{value: 2 * PRICE}(m, _idx(0, 1));
        _revoke(id);
        uint256 before = alice.balance;
        vm.prank(alice);
        market.claimRefund(m, _idx(0, 1));
        assertEq(alice.balance, before + 2 * PRICE);
        assertEq(market.escrowOf(id), 0);
        assertEq(address(market).balance, 0);
    }

    function _idx3(uint64 a, uint64 b, uint64 c) internal view returns (uint64[] memory x) {
        x = new uint64[](3);
        (x[0], x[1], x[2]) = (first + a, first + b, first + c);
    }

    function test_RevertWhen_purchase_notOwner() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotDeviceOwner.selector, first, alice, bob)
        );
        vm.prank(bob);
        market.purchase{value: PRICE}(m, _idx(0));
    }

    function test_RevertWhen_purchase_unclaimedDevice() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistryNotDeviceOwner.selector, first + 5, address(0), address(0)
            )
        );
        vm.prank(bob);
        market.purchaseFor{value: PRICE}(m, _idx(5));
    }

    function test_RevertWhen_purchase_inactiveDevice() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.prank(operator);
        registry.setDeviceActive(batchId, first, false);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUpdateRegistry.UpdateRegistryDeviceInactive.selector, first, IUpdateRegistry.DeviceStatus.Deactivated
            )
        );
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
    }

    function test_RevertWhen_purchase_otherModel() public {
        vm.prank(operator);
        uint32 other = registry.defineModel(mfId, "other", 0);
        IUpdateRegistry.Manifest memory m = _manifestFor(other, 1, PRICE, address(0));
        _publish(m);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryDeviceModelMismatch.selector, first, modelId, other)
        );
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
    }

    function test_RevertWhen_purchase_unknownRelease() public {
        IUpdateRegistry.Manifest memory m = _manifest(9, PRICE, address(0));
        bytes32 id = registry.releaseId(m);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketUnknownRelease.selector, id));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
    }

    function test_RevertWhen_purchase_tamperedPrice() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        m.price = 1;
        bytes32 id = registry.releaseId(m);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketUnknownRelease.selector, id));
        vm.prank(alice);
        market.purchase{value: 1}(m, _idx(0));
    }

    function test_RevertWhen_purchase_revoked() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        _revoke(id);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketReleaseRevoked.selector, id));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
    }

    function test_RevertWhen_purchase_expired() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.warp(m.expiry);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketReleaseExpired.selector, id, m.expiry));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
    }

    function test_purchaseFor_gift() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.expectEmit(address(market));
        emit IUpdateMarket.Purchased(id, bob, _idx(0, 1), 2 * PRICE, address(0));
        vm.prank(bob);
        market.purchaseFor{value: 2 * PRICE}(m, _idx(0, 1));
        assertTrue(market.isEntitled(id, first));
        assertTrue(market.isEntitled(id, first + 1));
        // The refund of a gift goes to the device's owner.
        _revoke(id);
        uint256 before = alice.balance;
        vm.prank(alice);
        market.claimRefund(m, _idx(0, 1));
        assertEq(alice.balance, before + 2 * PRICE);
    }

    function testFuzz_purchase_bitmaps(uint256 seed) public {
        // A 600-device batch (three entitlement words) whose tree holds only the randomly picked devices.
        uint64 f = registry.counters().devices;
        uint64[] memory pick = new uint64[](8);
        uint256 n;
        uint256 pos = bound(seed, 0, 40);
        while (n < 8 && pos < 600) {
            pick[n++] = f + uint64(pos);
            pos += 1 + (uint256(keccak256(abi.encode(seed, n))) % 120);
        }
        uint64[] memory idx = new uint64[](n);
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            idx[i] = pick[i];
            leaves[i] = _leaf(idx[i] - f, vm.addr(_deviceKey(i)), modelId);
        }
        vm.prank(operator);
        (uint64 b,) = registry.provisionDevices(mfId, Merkle.root(leaves), 600, "");
        for (uint256 i; i < n; ++i) {
            bytes memory sig =
                _signCompact(_deviceKey(i), _digest(keccak256(abi.encode(CLAIM_TYPEHASH, alice, idx[i]))));
            registry.claimDevice(b, idx[i], vm.addr(_deviceKey(i)), modelId, alice, Merkle.proof(leaves, i), sig);
        }
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: PRICE * n}(m, idx);
        for (uint256 i; i < n; ++i) {
            assertTrue(market.isEntitled(id, idx[i]));
            if (i == 0 || idx[i - 1] != idx[i] - 1) assertFalse(market.isEntitled(id, idx[i] - 1));
        }
        assertEq(market.escrowOf(id), PRICE * n);
    }

    // ---------------------------------------------------------------- purchase (ERC-20)

    function test_purchase_erc20() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(5e6, address(token));
        token.mint(alice, 1e9);
        vm.startPrank(alice);
        token.approve(address(market), 1e7);
        vm.expectEmit(address(market));
        emit IUpdateMarket.Purchased(id, alice, _idx(0, 1), 1e7, address(token));
        market.purchase(m, _idx(0, 1));
        vm.stopPrank();
        assertEq(token.balanceOf(address(market)), 1e7);
        assertEq(market.escrowOf(id), 1e7);
    }

    function test_purchase_noReturnToken() public {
        NoReturnToken usdt = new NoReturnToken();
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(5e6, address(usdt));
        usdt.mint(alice, 1e9);
        vm.startPrank(alice);
        usdt.approve(address(market), 5e6);
        market.purchase(m, _idx(0));
        vm.stopPrank();
        assertEq(usdt.balanceOf(address(market)), 5e6);
        // Refund path with a no-return token.
        _revoke(id);
        vm.prank(alice);
        market.claimRefund(m, _idx(0));
        assertEq(usdt.balanceOf(alice), 1e9);
    }

    function test_RevertWhen_purchase_feeOnTransferToken() public {
        FeeOnTransferToken fot = new FeeOnTransferToken();
        (IUpdateRegistry.Manifest memory m,) = _release(1000, address(fot));
        fot.mint(alice, 1e9);
        vm.startPrank(alice);
        fot.approve(address(market), 1000);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketTokenAmountMismatch.selector, address(fot), 1000, 990)
        );
        market.purchase(m, _idx(0));
        vm.stopPrank();
    }

    function test_RevertWhen_purchase_falseToken() public {
        FalseToken ft = new FalseToken();
        (IUpdateRegistry.Manifest memory m,) = _release(1000, address(ft));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketTokenTransferFailed.selector, address(ft)));
        vm.prank(alice);
        market.purchase(m, _idx(0));
    }

    function test_RevertWhen_purchase_revertingToken() public {
        RevertingToken rt = new RevertingToken();
        (IUpdateRegistry.Manifest memory m,) = _release(1000, address(rt));
        rt.mint(alice, 1e9);
        rt.setBroken(true);
        vm.startPrank(alice);
        rt.approve(address(market), 1000);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketTokenTransferFailed.selector, address(rt)));
        market.purchase(m, _idx(0));
        vm.stopPrank();
    }

    function test_RevertWhen_purchase_noAllowance() public {
        (IUpdateRegistry.Manifest memory m,) = _release(1000, address(token));
        token.mint(alice, 1e9);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketTokenTransferFailed.selector, address(token)));
        vm.prank(alice);
        market.purchase(m, _idx(0));
    }

    function test_RevertWhen_purchase_tokenNotAContract() public {
        (IUpdateRegistry.Manifest memory m,) = _release(1000, address(0xdead));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketTokenTransferFailed.selector, address(0xdead)));
        vm.prank(alice);
        market.purchase(m, _idx(0));
    }

    function test_RevertWhen_purchase_ethWithTokenRelease() public {
        (IUpdateRegistry.Manifest memory m,) = _release(1000, address(token));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketWrongPayment.selector, 0, 1));
        vm.prank(alice);
        market.purchase{value: 1}(m, _idx(0));
    }

    function test_RevertWhen_purchase_reentrantToken() public {
        ReentrantToken rt = new ReentrantToken();
        (IUpdateRegistry.Manifest memory m,) = _release(1000, address(rt));
        rt.mint(alice, 1e9);
        vm.prank(alice);
        rt.approve(address(market), 1e9);
        // During transferFrom the token re-enters purchase for another device: the lock rejects it.
        rt.arm(address(market), abi.encodeCall(market.purchaseFor, (m, _idx(1))));
        vm.prank(alice);
        market.purchase(m, _idx(0));
        assertFalse(rt.reentered());
        assertEq(
            keccak256(rt.reentryError()),
            keccak256(abi.encodeWithSelector(IUpdateMarket.UpdateMarketReentrant.selector))
        );
    }

    // ---------------------------------------------------------------- refunds

    function test_claimRefund() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: 3 * PRICE}(m, _toIdx3());
        vm.warp(block.timestamp + REFUND_WINDOW - 1);
        _revoke(id);
        uint256 before = alice.balance;
        vm.expectEmit(address(market));
        emit IUpdateMarket.Refunded(id, alice, _idx(0, 2), 2 * PRICE, address(0));
        vm.prank(alice);
        market.claimRefund(m, _idx(0, 2));
        assertEq(alice.balance, before + 2 * PRICE);
        assertEq(market.escrowOf(id), PRICE);
        assertFalse(market.isEntitled(id, first));
        assertTrue(market.isEntitled(id, first + 1));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketNotEntitled.selector, id, first));
        vm.prank(alice);
        market.claimRefund(m, _idx(0));
        // The escrow of a refundable release is never withdrawable.
        vm.warp(block.timestamp + 30 days);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketEarningsRefundable.selector, id));
        market.withdraw(m);
        vm.prank(alice);
        market.claimRefund(m, _idx(1));
        assertEq(market.escrowOf(id), 0);
        assertEq(address(market).balance, 0);
    }

    function _toIdx3() internal view returns (uint64[] memory x) {
        x = new uint64[](3);
        (x[0], x[1], x[2]) = (first, first + 1, first + 2);
    }

    function test_claimRefund_token() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(5e6, address(token));
        token.mint(alice, 1e7);
        vm.startPrank(alice);
        token.approve(address(market), 1e7);
        market.purchase(m, _idx(0, 1));
        vm.stopPrank();
        _revoke(id);
        vm.expectEmit(address(market));
        emit IUpdateMarket.Refunded(id, alice, _idx(0, 1), 1e7, address(token));
        vm.prank(alice);
        market.claimRefund(m, _idx(0, 1));
        assertEq(token.balanceOf(alice), 1e7);
    }

    function test_claimRefund_goesToCurrentOwner() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
        vm.prank(alice);
        registry.transferDevice(first, bob);
        _revoke(id);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotDeviceOwner.selector, first, bob, alice)
        );
        vm.prank(alice);
        market.claimRefund(m, _idx(0));
        uint256 before = bob.balance;
        vm.prank(bob);
        market.claimRefund(m, _idx(0));
        assertEq(bob.balance, before + PRICE);
    }

    function test_RevertWhen_claimRefund_notRevoked() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketNotRefundable.selector, id));
        vm.prank(alice);
        market.claimRefund(m, _idx(0));
    }

    function test_RevertWhen_claimRefund_revokedAfterWindow() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
        vm.warp(block.timestamp + REFUND_WINDOW);
        _revoke(id);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketNotRefundable.selector, id));
        vm.prank(alice);
        market.claimRefund(m, _idx(0));
        // The manufacturer keeps the earnings of a release revoked after settlement.
        market.withdraw(m);
        assertEq(payee.balance, PRICE);
    }

    function test_RevertWhen_claimRefund_noDevices() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.expectRevert(IUpdateMarket.UpdateMarketNoDevices.selector);
        market.claimRefund(m, new uint64[](0));
    }

    function test_RevertWhen_claimRefund_unknownRelease() public {
        IUpdateRegistry.Manifest memory m = _manifest(50, PRICE, address(0));
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketUnknownRelease.selector, registry.releaseId(m))
        );
        market.claimRefund(m, _idx(0));
    }

    function test_RevertWhen_claimRefund_rejectingReceiver() public {
        EthRejecter rejecter = new EthRejecter();
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
        vm.prank(alice);
        registry.transferDevice(first, address(rejecter));
        _revoke(id);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketEthTransferFailed.selector, address(rejecter), PRICE)
        );
        vm.prank(address(rejecter));
        market.claimRefund(m, _idx(0));
    }

    function test_RevertWhen_claimRefund_reentrantReceiver() public {
        ReentrantReceiver rr = new ReentrantReceiver();
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: 2 * PRICE}(m, _idx(0, 1));
        vm.startPrank(alice);
        registry.transferDevice(first, address(rr));
        registry.transferDevice(first + 1, address(rr));
        vm.stopPrank();
        _revoke(id);
        // On receiving the first refund the receiver tries to claim the second one inside the call.
        rr.arm(address(market), abi.encodeCall(market.claimRefund, (m, _idx(1))));
        rr.call(address(market), abi.encodeCall(market.claimRefund, (m, _idx(0))));
        assertFalse(rr.reentered());
        assertEq(
            keccak256(rr.reentryError()),
            keccak256(abi.encodeWithSelector(IUpdateMarket.UpdateMarketReentrant.selector))
        );
        assertEq(address(rr).balance, PRICE);
        assertEq(market.escrowOf(id), PRICE);
    }

    // ---------------------------------------------------------------- withdraw

    function test_withdraw() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: 2 * PRICE}(m, _idx(0, 1));
        vm.warp(block.timestamp + REFUND_WINDOW);
        vm.expectEmit(address(market));
        emit IUpdateMarket.Withdrawn(id, mfId, payee, 2 * PRICE, address(0));
        vm.prank(bob); // anyone may trigger; the payee receives
        market.withdraw(m);
        assertEq(payee.balance, 2 * PRICE);
        assertEq(market.escrowOf(id), 0);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketNothingToWithdraw.selector, id));
        market.withdraw(m);
        // Purchases after settlement are withdrawable at once.
        vm.prank(bob);
        market.purchase{value: PRICE}(m, _idx(4));
        market.withdraw(m);
        assertEq(payee.balance, 3 * PRICE);
    }

    function test_withdraw_token() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(5e6, address(token));
        token.mint(alice, 5e6);
        vm.startPrank(alice);
        token.approve(address(market), 5e6);
        market.purchase(m, _idx(0));
        vm.stopPrank();
        vm.warp(block.timestamp + REFUND_WINDOW);
        vm.expectEmit(address(market));
        emit IUpdateMarket.Withdrawn(id, mfId, payee, 5e6, address(token));
        market.withdraw(m);
        assertEq(token.balanceOf(payee), 5e6);
    }

    function test_withdraw_payeeChangedByThreshold() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
        bytes32 h = keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(0), operator, address(0x9A1)));
        registry.updateManufacturer(mfId, operator, address(0x9A1), _approve(h));
        vm.warp(block.timestamp + REFUND_WINDOW);
        market.withdraw(m);
        assertEq(address(0x9A1).balance, PRICE);
    }

    function test_RevertWhen_withdraw_notSettled() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
        vm.warp(block.timestamp + REFUND_WINDOW - 1);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketNotSettled.selector, id, block.timestamp + 1));
        market.withdraw(m);
    }

    function test_RevertWhen_withdraw_unknownRelease() public {
        IUpdateRegistry.Manifest memory m = _manifest(50, PRICE, address(0));
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketUnknownRelease.selector, registry.releaseId(m))
        );
        market.withdraw(m);
    }

    function test_RevertWhen_withdraw_reentrantPayee() public {
        ReentrantReceiver rr = new ReentrantReceiver();
        bytes32 h = keccak256(abi.encode(UPDATE_TYPEHASH, mfId, uint64(0), operator, address(rr)));
        registry.updateManufacturer(mfId, operator, address(rr), _approve(h));
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        vm.prank(alice);
        market.purchase{value: PRICE}(m, _idx(0));
        vm.warp(block.timestamp + REFUND_WINDOW);
        rr.arm(address(market), abi.encodeCall(market.withdraw, (m)));
        market.withdraw(m);
        assertFalse(rr.reentered());
        assertEq(address(rr).balance, PRICE);
    }

    function test_RevertWhen_constructor_zeroRegistry() public {
        vm.expectRevert(IUpdateMarket.UpdateMarketZeroRegistry.selector);
        new UpdateMarket(IUpdateRegistry(address(0)), 1);
    }

    /// @dev A refund window longer than MAX_REFUND_WINDOW is refused by name; the longest one settles.
    function test_RevertWhen_constructor_refundWindowTooLong() public {
        uint256 max = market.MAX_REFUND_WINDOW();
        assertEq(max, 365 days);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketRefundWindowTooLong.selector, max + 1, max));
        new UpdateMarket(registry, max + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketRefundWindowTooLong.selector, type(uint256).max, max)
        );
        new UpdateMarket(registry, type(uint256).max);
        // The longest accepted window: a release's escrow settles and is withdrawn.
        UpdateMarket longMarket = new UpdateMarket(registry, max);
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.prank(alice);
        longMarket.purchase{value: PRICE}(m, _idx(0));
        assertEq(longMarket.settlesAt(id), block.timestamp + max);
        vm.warp(block.timestamp + max);
        longMarket.withdraw(m);
        assertEq(payee.balance, PRICE);
    }

    /// @dev Dirty high bits in a manifest field revert with the field and the word (market and registry alike).
    function test_RevertWhen_purchase_dirtyManifestField() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        bytes memory cd = abi.encodeCall(market.purchase, (m, _idx(0)));
        uint256 word = (uint256(1) << 200) | m.bundleSize;
        uint256 pos = 4 + 0x40 + 0x60; // the manifest's head starts after the two offset words; bundleSize is field 3
        assembly ("memory-safe") {
            mstore(add(add(cd, 0x20), pos), word)
        }
        vm.prank(alice);
        (bool ok, bytes memory ret) = address(market).call{value: PRICE}(cd);
        assertFalse(ok);
        assertEq(
            keccak256(ret), keccak256(abi.encodeWithSelector(ManifestHash.ManifestHashDirtyField.selector, 3, word))
        );
    }

    function test_RevertWhen_settlesAt_unknownRelease() public {
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketUnknownRelease.selector, bytes32(uint256(1))));
        market.settlesAt(bytes32(uint256(1)));
    }

    function test_views() public view {
        assertEq(address(market.REGISTRY()), address(registry));
        assertEq(market.REFUND_WINDOW(), REFUND_WINDOW);
        assertFalse(market.isEntitled(bytes32(0), 0));
    }
    // ---------------------------------------------------------------- second review: buyer and griefer attacks
    // Each attempt is raw calldata (`abi.encodeCall`, patched where noted) sent with a low-level call.

    function _raw(address from, uint256 value, bytes memory cd) internal returns (bool ok, bytes memory ret) {
        vm.prank(from);
        (ok, ret) = address(market).call{value: value}(cd);
    }

    function _err(bytes memory ret, bytes memory expected) internal pure {
        assertEq(keccak256(ret), keccak256(expected));
    }

    /// @dev The ETH a purchase sends back for skipped devices goes to a buyer contract that re-enters the market
    /// from `receive` (a refund claim, another purchase): the lock refuses it, the purchase completes, and the
    /// books hold exactly the price of the device bought.
    function test_purchase_skipRefund_reentryRefused() public {
        ReentrantReceiver rr = new ReentrantReceiver();
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        vm.startPrank(alice);
        registry.transferDevice(first, address(rr));
        registry.transferDevice(first + 1, address(rr));
        vm.stopPrank();
        vm.prank(bob);
        market.purchaseFor{value: PRICE}(m, _idx(1));
        bytes[2] memory reentries =
            [abi.encodeCall(market.claimRefund, (m, _idx(1))), abi.encodeCall(market.purchaseFor, (m, _idx(2)))];
        for (uint256 i; i < 2; ++i) {
            uint256 snap = vm.snapshotState();
            rr.arm(address(market), reentries[i]);
            vm.deal(address(this), 2 * PRICE);
            rr.call{value: 2 * PRICE}(address(market), abi.encodeCall(market.purchase, (m, _idx(0, 1))));
            assertFalse(rr.reentered());
            _err(rr.reentryError(), abi.encodeWithSelector(IUpdateMarket.UpdateMarketReentrant.selector));
            assertEq(address(rr).balance, PRICE); // the gifted device's price came back
            assertEq(market.escrowOf(id), 2 * PRICE);
            assertEq(address(market).balance, 2 * PRICE);
            assertFalse(market.isEntitled(id, first + 2));
            vm.revertToState(snap);
        }
    }

    /// @dev A buyer contract that cannot receive ETH, one of whose devices a griefer gifted: the price of the
    /// skipped device cannot be sent back, so the purchase reverts as a whole (nothing charged, nothing kept) and
    /// the buyer resends without the gifted device. A free gift (price 0) sends nothing back and cannot block.
    function test_RevertWhen_purchase_skipRefundToRejectingBuyer() public {
        RejectingBuyer buyer = new RejectingBuyer();
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        (IUpdateRegistry.Manifest memory free, bytes32 freeId) = _release(0, address(0));
        vm.startPrank(alice);
        registry.transferDevice(first, address(buyer));
        registry.transferDevice(first + 1, address(buyer));
        vm.stopPrank();
        vm.startPrank(bob);
        market.purchaseFor{value: PRICE}(m, _idx(1));
        market.purchaseFor(free, _idx(1));
        vm.stopPrank();
        vm.deal(address(buyer), 2 * PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketEthTransferFailed.selector, address(buyer), PRICE)
        );
        buyer.buy(market, m, _idx(0, 1), 2 * PRICE);
        assertEq(address(buyer).balance, 2 * PRICE);
        assertEq(market.escrowOf(id), PRICE);
        assertFalse(market.isEntitled(id, first));
        buyer.buy(market, m, _idx(0), PRICE);
        assertTrue(market.isEntitled(id, first));
        buyer.buy(market, free, _idx(0, 1), 0);
        assertTrue(market.isEntitled(freeId, first));
    }

    /// @dev A gifted device refunded twice, or by the gifter: the refund goes to the device's owner once (the
    /// gifter's price included, as for any device), a second claim finds the bit cleared, the gifter owns
    /// nothing to claim, and a list naming a device twice is refused.
    function test_RevertWhen_claimRefund_giftRefundedTwice() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        (bool ok, bytes memory ret) = _raw(bob, PRICE, abi.encodeCall(market.purchaseFor, (m, _idx(1))));
        assertTrue(ok);
        (ok,) = _raw(alice, 2 * PRICE, abi.encodeCall(market.purchase, (m, _idx(0, 1))));
        assertTrue(ok);
        _revoke(id);
        (ok, ret) = _raw(bob, 0, abi.encodeCall(market.claimRefund, (m, _idx(1))));
        assertFalse(ok);
        _err(ret, abi.encodeWithSelector(IUpdateRegistry.UpdateRegistryNotDeviceOwner.selector, first + 1, alice, bob));
        uint64[] memory twice = new uint64[](2);
        (twice[0], twice[1]) = (first + 1, first + 1);
        (ok, ret) = _raw(alice, 0, abi.encodeCall(market.claimRefund, (m, twice)));
        assertFalse(ok);
        _err(ret, abi.encodeWithSelector(IUpdateMarket.UpdateMarketDevicesNotAscending.selector, 1, first + 1));
        uint256 before = alice.balance;
        (ok,) = _raw(alice, 0, abi.encodeCall(market.claimRefund, (m, _idx(0, 1))));
        assertTrue(ok);
        assertEq(alice.balance, before + 2 * PRICE);
        (ok, ret) = _raw(alice, 0, abi.encodeCall(market.claimRefund, (m, _idx(1))));
        assertFalse(ok);
        _err(ret, abi.encodeWithSelector(IUpdateMarket.UpdateMarketNotEntitled.selector, id, first + 1));
        assertEq(market.escrowOf(id), 0);
        assertEq(address(market).balance, 0);
    }

    /// @dev A list naming a device twice, or descending, is refused before anything is set or charged, even when
    /// the device was gifted (skipped) first.
    function test_RevertWhen_purchase_duplicateAfterGift() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        (bool ok,) = _raw(bob, PRICE, abi.encodeCall(market.purchaseFor, (m, _idx(1))));
        assertTrue(ok);
        uint64[][2] memory lists;
        lists[0] = new uint64[](3);
        (lists[0][0], lists[0][1], lists[0][2]) = (first, first + 1, first + 1);
        lists[1] = _idx(1, 0);
        uint64[2] memory where = [first + 1, first];
        for (uint256 i; i < 2; ++i) {
            bytes memory ret;
            (ok, ret) = _raw(alice, PRICE * lists[i].length, abi.encodeCall(market.purchase, (m, lists[i])));
            assertFalse(ok);
            _err(
                ret,
                abi.encodeWithSelector(IUpdateMarket.UpdateMarketDevicesNotAscending.selector, i == 0 ? 2 : 1, where[i])
            );
        }
        assertEq(market.escrowOf(id), PRICE);
        assertFalse(market.isEntitled(id, first));
    }

    /// @dev msg.value edge cases with a skipped device: the quote is the whole list; paying only for the fresh
    /// devices, one wei more or less, or ETH for a token release is refused; a list of only entitled devices is
    /// refused and the ETH stays with the buyer.
    function test_RevertWhen_purchase_msgValueEdges() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        (IUpdateRegistry.Manifest memory tm,) = _release(PRICE, address(token));
        (bool ok,) = _raw(bob, PRICE, abi.encodeCall(market.purchaseFor, (m, _idx(1))));
        assertTrue(ok);
        bytes memory cd = abi.encodeCall(market.purchase, (m, _idx(0, 1)));
        uint256[4] memory values = [uint256(PRICE), 2 * PRICE - 1, 2 * PRICE + 1, 0];
        for (uint256 i; i < values.length; ++i) {
            (bool ok2, bytes memory ret) = _raw(alice, values[i], cd);
            assertFalse(ok2);
            _err(ret, abi.encodeWithSelector(IUpdateMarket.UpdateMarketWrongPayment.selector, 2 * PRICE, values[i]));
        }
        uint256 before = alice.balance;
        (bool ok3, bytes memory ret3) = _raw(alice, PRICE, abi.encodeCall(market.purchase, (m, _idx(1))));
        assertFalse(ok3);
        _err(ret3, abi.encodeWithSelector(IUpdateMarket.UpdateMarketAlreadyEntitled.selector, id, first + 1));
        assertEq(alice.balance, before);
        (ok3, ret3) = _raw(alice, 1, abi.encodeCall(market.purchase, (tm, _idx(0))));
        assertFalse(ok3);
        _err(ret3, abi.encodeWithSelector(IUpdateMarket.UpdateMarketWrongPayment.selector, 0, 1));
        assertEq(address(market).balance, PRICE);
    }

    /// @dev price × count at the largest price (uint128 max) does not wrap: the quote and escrow are exact.
    function test_purchase_maxPrice_noOverflow() public {
        uint128 max = type(uint128).max;
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(max, address(0));
        uint256 quote = uint256(max) * 3;
        vm.deal(alice, quote);
        uint64[] memory three = new uint64[](3);
        (three[0], three[1], three[2]) = (first, first + 1, first + 2);
        (bool ok,) = _raw(alice, quote, abi.encodeCall(market.purchase, (m, three)));
        assertTrue(ok);
        assertEq(market.escrowOf(id), quote);
        assertEq(address(market).balance, quote);
    }

    /// @dev A device index word with bits above 64 (raw calldata): refused by the checked decoding of the list,
    /// nothing set (it cannot alias another device's bit).
    function test_RevertWhen_purchase_dirtyDeviceIndex() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(0));
        bytes memory cd = abi.encodeCall(market.purchase, (m, _idx(0)));
        uint256 pos = 4 + _wordAt(cd, 4 + 32) + 32; // the list's first element
        uint256 dirty = _wordAt(cd, pos) | (uint256(1) << 64);
        assembly ("memory-safe") {
            mstore(add(add(cd, 0x20), pos), dirty)
        }
        (bool ok, bytes memory ret) = _raw(alice, PRICE, cd);
        assertFalse(ok);
        assertEq(ret.length, 0);
        assertFalse(market.isEntitled(id, first));
    }

    /// @dev The manifest's `bundleCid` length patched to run past the calldata (market side of ManifestHash):
    /// refused with the values read before any payment or entitlement.
    function test_RevertWhen_purchase_cidLengthOutOfBounds() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        bytes memory cd = abi.encodeCall(market.purchase, (m, _idx(0)));
        uint256 mAt = 4 + _wordAt(cd, 4);
        uint256 rel = _wordAt(cd, mAt + 0x80);
        uint256 lenAt = mAt + rel;
        uint256 huge = type(uint256).max - lenAt; // lenAt + 32 + huge wraps to 31
        assembly ("memory-safe") {
            mstore(add(add(cd, 0x20), lenAt), huge)
        }
        (bool ok, bytes memory ret) = _raw(alice, PRICE, cd);
        assertFalse(ok);
        _err(ret, abi.encodeWithSelector(ManifestHash.ManifestHashCidOutOfBounds.selector, rel, huge, cd.length));
    }

    /// @dev The refund window's edges with the longest window: revoked one second before
    /// `publishedAt + MAX_REFUND_WINDOW` refunds; revoked at that second, the escrow settles to the payee and no
    /// refund can be claimed (each release pays out exactly once).
    function test_maxRefundWindow_boundaries() public {
        uint256 max = market.MAX_REFUND_WINDOW();
        UpdateMarket longMarket = new UpdateMarket(registry, max);
        (IUpdateRegistry.Manifest memory a, bytes32 ida) = _release(PRICE, address(0));
        (IUpdateRegistry.Manifest memory b, bytes32 idb) = _release(PRICE, address(0));
        uint256 published = block.timestamp;
        vm.startPrank(alice);
        longMarket.purchase{value: PRICE}(a, _idx(0));
        longMarket.purchase{value: PRICE}(b, _idx(0));
        vm.stopPrank();
        vm.warp(published + max - 1);
        _revoke(ida);
        vm.warp(published + max);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketEarningsRefundable.selector, ida));
        longMarket.withdraw(a);
        vm.prank(alice);
        longMarket.claimRefund(a, _idx(0));
        _revoke(idb);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketNotRefundable.selector, idb));
        vm.prank(alice);
        longMarket.claimRefund(b, _idx(0));
        longMarket.withdraw(b);
        assertEq(payee.balance, PRICE);
        assertEq(address(longMarket).balance, 0);
    }

    function _wordAt(bytes memory cd, uint256 pos) internal pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := mload(add(add(cd, 0x20), pos))
        }
    }
}

/// @notice A buyer contract without `receive`: it can buy, but cannot be sent ETH.
contract RejectingBuyer {
    function buy(UpdateMarket market, IUpdateRegistry.Manifest calldata m, uint64[] calldata idx, uint256 value)
        external
    {
        market.purchase{value: value}(m, idx);
    }
}
