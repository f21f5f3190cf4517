// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {DemoToken} from "../src/demo/DemoToken.sol";
import {IUpdateMarket} from "../src/interfaces/IUpdateMarket.sol";
import {IUpdateRegistry} from "../src/interfaces/IUpdateRegistry.sol";
import {Base} from "./Base.t.sol";
import {FeeOnTransferPermitToken, MockERC20, PermitERC20} from "./mocks/Tokens.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

/// @notice `purchaseWithPermit` / `purchaseForWithPermit`: EIP-2612 permits instead of a separate `approve`.
contract UpdateMarketPermitTest is Base {
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    uint128 internal constant PRICE = 5e6;
    uint256 internal constant BUYER_KEY = 0xB0B0B0;
    uint256 internal constant MALLORY_KEY = 0xBAD;

    address internal buyer;
    uint64 internal first;
    uint64 internal nextVersion = 1;
    PermitERC20 internal token;

    function setUp() public override {
        super.setUp();
        buyer = vm.addr(BUYER_KEY);
        uint64 batchId;
        bytes32[] memory leaves;
        (batchId, first, leaves) = _provision(4);
        _claim(batchId, first, leaves, 0, buyer);
        _claim(batchId, first, leaves, 1, buyer);
        _claim(batchId, first, leaves, 2, alice);
        token = new PermitERC20();
        token.mint(buyer, 1e12);
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

    /// @dev A permit of `value` for the market signed with `key` as if by `owner`.
    function _permit(IERC20Permit tok, uint256 key, address owner, uint256 value, uint256 deadline)
        internal
        view
        returns (IUpdateMarket.Permit memory p)
    {
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, owner, address(market), value, tok.nonces(owner), deadline));
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", tok.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        p = IUpdateMarket.Permit({value: value, deadline: deadline, v: v, r: r, s: s});
    }

    // ---------------------------------------------------------------- valid permits

    function test_purchaseWithPermit() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(token));
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, 2 * PRICE, block.timestamp + 1 hours);
        assertEq(token.allowance(buyer, address(market)), 0);
        uint256 before = token.balanceOf(buyer);
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0, 1), p);
        assertTrue(market.isEntitled(id, first));
        assertTrue(market.isEntitled(id, first + 1));
        assertEq(token.balanceOf(buyer), before - 2 * PRICE);
        assertEq(token.balanceOf(address(market)), 2 * PRICE);
        assertEq(market.escrowOf(id), 2 * PRICE);
        assertEq(token.allowance(buyer, address(market)), 0, "the permit's allowance is used up");
        assertEq(token.nonces(buyer), 1, "the permit was applied");
    }

    /// @dev The demo's token (`otaledger demo --token`): six decimals, its whole supply with the holder, and a
    /// purchase paid with one permit in one transaction.
    function test_demoTokenPaysWithOnePermit() public {
        DemoToken dusd = new DemoToken(buyer, 1000e6);
        assertEq(dusd.decimals(), 6);
        assertEq(dusd.totalSupply(), 1000e6);
        assertEq(dusd.balanceOf(buyer), 1000e6);
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(10e6, address(dusd));
        IUpdateMarket.Permit memory p = _permit(dusd, BUYER_KEY, buyer, 20e6, block.timestamp + 1 hours);
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0, 1), p);
        assertTrue(market.isEntitled(id, first) && market.isEntitled(id, first + 1));
        assertEq(dusd.balanceOf(buyer), 980e6);
        assertEq(market.escrowOf(id), 20e6);
        assertEq(dusd.nonces(buyer), 1, "the permit was applied");
    }

    function test_purchaseForWithPermit_gift() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(token));
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, PRICE, block.timestamp + 1 hours);
        vm.prank(buyer);
        market.purchaseForWithPermit(m, _idx(2), p); // alice's device
        assertTrue(market.isEntitled(id, first + 2));
        assertEq(token.balanceOf(address(market)), PRICE);
    }

    /// @dev Someone submits the buyer's permit to the token first (it is public in the mempool): the permit in the
    /// purchase then fails on the used nonce, but the allowance it set covers the purchase, which goes through.
    function test_purchaseWithPermit_frontRunPermitDoesNotBlock() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(token));
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, PRICE, block.timestamp + 1 hours);
        vm.prank(bob);
        token.permit(buyer, address(market), p.value, p.deadline, p.v, p.r, p.s);
        assertEq(token.allowance(buyer, address(market)), PRICE);
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
        assertTrue(market.isEntitled(id, first));
        assertEq(token.balanceOf(address(market)), PRICE);
    }

    /// @dev A failed permit is also ignored when an earlier `approve` covers the purchase.
    function test_purchaseWithPermit_failedPermitWithApproval() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(token));
        IUpdateMarket.Permit memory p = _permit(token, MALLORY_KEY, buyer, PRICE, block.timestamp + 1 hours);
        vm.prank(buyer);
        token.approve(address(market), PRICE);
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
        assertTrue(market.isEntitled(id, first));
    }

    // ---------------------------------------------------------------- refused

    function test_RevertWhen_permitExpired() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(token));
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, PRICE, block.timestamp - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketPermitFailed.selector, address(token), PRICE, 0)
        );
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
        assertFalse(market.isEntitled(id, first));
    }

    function test_RevertWhen_permitWrongSigner() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(token));
        IUpdateMarket.Permit memory p = _permit(token, MALLORY_KEY, buyer, PRICE, block.timestamp + 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketPermitFailed.selector, address(token), PRICE, 0)
        );
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
    }

    /// @dev A permit signed by the buyer but submitted by someone else (msg.sender is the owner the market permits
    /// for) does not let the submitter spend the buyer's tokens.
    function test_RevertWhen_permitOfAnotherOwner() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(token));
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, PRICE, block.timestamp + 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketPermitFailed.selector, address(token), PRICE, 0)
        );
        vm.prank(bob);
        market.purchaseForWithPermit(m, _idx(0), p);
    }

    function test_RevertWhen_permitValueBelowPrice() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(token));
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, PRICE - 1, block.timestamp + 1 hours);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketTokenTransferFailed.selector, address(token)));
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
    }

    function test_RevertWhen_permitOnEthRelease() public {
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(0));
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, PRICE, block.timestamp + 1 hours);
        vm.expectRevert(IUpdateMarket.UpdateMarketPermitForEthRelease.selector);
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
        vm.expectRevert(IUpdateMarket.UpdateMarketPermitForEthRelease.selector);
        vm.prank(buyer);
        market.purchaseForWithPermit(m, _idx(0), p);
    }

    function test_RevertWhen_permitTokenWithoutPermit() public {
        MockERC20 plain = new MockERC20();
        (IUpdateRegistry.Manifest memory m,) = _release(PRICE, address(plain));
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, PRICE, block.timestamp + 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketPermitFailed.selector, address(plain), PRICE, 0)
        );
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
    }

    function test_RevertWhen_permitFeeOnTransfer() public {
        FeeOnTransferPermitToken fot = new FeeOnTransferPermitToken();
        fot.mint(buyer, 1e12);
        (IUpdateRegistry.Manifest memory m,) = _release(1000, address(fot));
        IUpdateMarket.Permit memory p = _permit(fot, BUYER_KEY, buyer, 1000, block.timestamp + 1 hours);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateMarket.UpdateMarketTokenAmountMismatch.selector, address(fot), 1000, 990)
        );
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
    }

    function test_RevertWhen_permitRevokedRelease() public {
        (IUpdateRegistry.Manifest memory m, bytes32 id) = _release(PRICE, address(token));
        vm.prank(operator);
        registry.emergencyRevoke(id, "bad");
        IUpdateMarket.Permit memory p = _permit(token, BUYER_KEY, buyer, PRICE, block.timestamp + 1 hours);
        vm.expectRevert(abi.encodeWithSelector(IUpdateMarket.UpdateMarketReleaseRevoked.selector, id));
        vm.prank(buyer);
        market.purchaseWithPermit(m, _idx(0), p);
        assertEq(token.nonces(buyer), 0, "nothing applied");
    }
}
