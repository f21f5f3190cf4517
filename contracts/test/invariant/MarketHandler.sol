// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {UpdateMarket} from "../../src/UpdateMarket.sol";
import {UpdateRegistry} from "../../src/UpdateRegistry.sol";
import {IUpdateMarket} from "../../src/interfaces/IUpdateMarket.sol";
import {IUpdateRegistry} from "../../src/interfaces/IUpdateRegistry.sol";
import {MockERC20, NoReturnToken, PermitERC20} from "../mocks/Tokens.sol";
import {Merkle} from "../utils/Merkle.sol";
import {Vm} from "../utils/Vm.sol";

/// @notice Drives an UpdateMarket with random purchases, gifts, refunds, withdrawals, revocations, device
/// transfers, EIP-2612 permit purchases and time, keeping ghost books of what was paid for which (release, device).
contract MarketHandler {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
    bytes32 internal constant CLAIM_TYPEHASH = keccak256("Claim(address owner,uint64 deviceIndex)");
    uint256 public constant DEVICES = 10;
    uint256 public constant RELEASES = 5;
    uint256 public constant WINDOW = 7 days;
    address public constant PAYEE = address(0xFEE);

    UpdateRegistry public immutable registry;
    UpdateMarket public immutable market;
    MockERC20 public immutable token;
    NoReturnToken public immutable usdt;
    PermitERC20 public immutable ptoken;
    uint32 public immutable mfId;
    uint64 public immutable first;

    address[3] public actors = [address(0xA1), address(0xA2), address(0xA3)];
    uint256 internal signerKey = 0x51;
    /// @dev The buyer of permit purchases (a key, to sign permits) and a key that is not the buyer's.
    uint256 internal constant PERMIT_BUYER_KEY = 0xB0B0;
    uint256 internal constant WRONG_KEY = 0xBAD;
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    IUpdateRegistry.Manifest[RELEASES] internal manifests;
    bytes32[RELEASES] public ids;

    /// @dev Ghost books.
    mapping(bytes32 => mapping(uint64 => bool)) public ghostEntitled;
    mapping(bytes32 => uint256) public ghostEscrow;
    uint256 public purchases;
    uint256 public refunds;
    uint256 public permitPurchases;
    uint256 public withdrawals;

    /// @dev Checks made inside the handler count here: with `fail_on_revert = false` a `require` in a handler
    /// only discards the call, so a broken check would pass silently. `invariant_handlerChecksHold` asserts zero.
    uint256 public violations;
    /// @dev The first violated check.
    string public firstViolation;

    constructor() {
        registry = new UpdateRegistry();
        market = new UpdateMarket(registry, WINDOW);
        token = new MockERC20();
        usdt = new NoReturnToken();
        ptoken = new PermitERC20();
        address[] memory set = new address[](1);
        set[0] = vm.addr(signerKey);
        mfId = registry.registerManufacturer("m", address(this), PAYEE, set, 1, "");
        uint32 modelId = registry.defineModel(mfId, "x", 0);

        // Ten devices, claimed round-robin by the three actors.
        bytes32[] memory leaves = new bytes32[](DEVICES);
        for (uint256 i; i < DEVICES; ++i) {
            leaves[i] = keccak256(bytes.concat(keccak256(abi.encode(uint64(i), _dev(i), modelId))));
        }
        // Devices 0..249 belong to an earlier batch so the ten straddle an entitlement word boundary.
        registry.provisionDevices(mfId, bytes32(uint256(1)), 250, "");
        (uint64 b, uint64 f) = registry.provisionDevices(mfId, Merkle.root(leaves), uint32(DEVICES), "");
        first = f;
        for (uint256 i; i < DEVICES; ++i) {
            address owner = actors[i % 3];
            bytes32 digest = keccak256(
                abi.encodePacked(
                    hex"1901", registry.DOMAIN_SEPARATOR(), keccak256(abi.encode(CLAIM_TYPEHASH, owner, f + uint64(i)))
                )
            );
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(_devKey(i), digest);
            bytes memory sig = abi.encodePacked(r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
            registry.claimDevice(b, f + uint64(i), _dev(i), modelId, owner, Merkle.proof(leaves, i), sig);
        }

        // Releases: two in ETH, one in a standard token, one in a no-return token, one in a permit token.
        address[RELEASES] memory tokens = [address(0), address(0), address(token), address(usdt), address(ptoken)];
        uint128[RELEASES] memory prices = [uint128(1 ether), 3 ether, 5e6, 7e6, 11e6];
        for (uint256 i; i < RELEASES; ++i) {
            IUpdateRegistry.Manifest memory m = IUpdateRegistry.Manifest({
                modelId: modelId,
                version: uint64(i + 1),
                bundleSha256: bytes32(i),
                bundleSize: 1,
                bundleCid: "cid",
                imageSha256: bytes32(0),
                price: prices[i],
                paymentToken: tokens[i],
                policyId: bytes32(0),
                expiry: uint64(block.timestamp + 3650 days),
                metadataHash: bytes32(0)
            });
            manifests[i] = m;
            bytes32 id = registry.releaseId(m);
            bytes32 digest = keccak256(abi.encodePacked(hex"1901", registry.DOMAIN_SEPARATOR(), id));
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(signerKey, digest);
            ids[i] = registry.publishRelease(
                m,
                IUpdateRegistry.Approval({
                    signers: set,
                    threshold: 1,
                    signatures: abi.encodePacked(r, bytes32(uint256(s) | (uint256(v - 27) << 255)))
                })
            );
        }
    }

    // ---------------------------------------------------------------- actions

    function purchase(uint256 actorSeed, uint256 releaseSeed, uint256 deviceBits, bool gift, uint8 wrongSeed) external {
        bool wrongAmount = wrongSeed % 10 == 0;
        address buyer = actors[actorSeed % 3];
        uint256 k = releaseSeed % RELEASES;
        IUpdateRegistry.Manifest memory m = manifests[k];
        uint64[] memory idx = _devices(deviceBits, gift ? address(0) : buyer);
        if (idx.length == 0) return;
        uint256 amount = uint256(m.price) * idx.length;
        uint256 pay = wrongAmount ? amount + 1 : amount;
        if (m.paymentToken == address(0)) {
            vm.deal(buyer, pay);
        } else if (m.paymentToken == address(token)) {
            token.mint(buyer, pay);
            vm.prank(buyer);
            token.approve(address(market), pay);
        } else if (m.paymentToken == address(ptoken)) {
            ptoken.mint(buyer, pay);
            vm.prank(buyer);
            ptoken.approve(address(market), pay);
        } else {
            usdt.mint(buyer, pay);
            vm.prank(buyer);
            usdt.approve(address(market), pay);
        }
        uint256 value = m.paymentToken == address(0) ? pay : 0;
        uint256 fresh;
        for (uint256 i; i < idx.length; ++i) {
            if (!ghostEntitled[ids[k]][idx[i]]) ++fresh;
        }
        uint256 ethBefore = buyer.balance;
        IUpdateRegistry.Release memory r = registry.release(ids[k]);
        // Must go through: the exact quote, something left to buy, a live release, devices the buyer (or, for a
        // gift, anyone) owns.
        bool mustSucceed = (!wrongAmount || m.paymentToken != address(0)) && fresh != 0 && r.revokedAt == 0
            && m.expiry > block.timestamp;
        try (gift ? this.doPurchaseFor : this.doPurchase)(buyer, value, m, idx) {
            _check(!wrongAmount || m.paymentToken != address(0), "wrong ETH amount accepted");
            _check(fresh != 0, "purchase of entitled devices only accepted");
            _check(r.revokedAt == 0, "purchase of a revoked release accepted");
            // Devices already entitled are skipped: not charged (ETH: the difference comes back to the buyer).
            for (uint256 i; i < idx.length; ++i) {
                ghostEntitled[ids[k]][idx[i]] = true;
            }
            uint256 charged = uint256(m.price) * fresh;
            if (m.paymentToken == address(0)) {
                _check(buyer.balance == ethBefore - charged, "skipped devices charged (ETH)");
            }
            ghostEscrow[ids[k]] += charged;
            ++purchases;
        } catch {
            _check(!mustSucceed, "valid purchase refused");
        }
    }

    /// @dev External so `try` can catch the market's revert; only the handler itself calls these.
    function doPurchase(address buyer, uint256 value, IUpdateRegistry.Manifest calldata m, uint64[] calldata idx)
        external
    {
        require(msg.sender == address(this));
        vm.prank(buyer);
        market.purchase{value: value}(m, idx);
    }

    function doPurchaseFor(address buyer, uint256 value, IUpdateRegistry.Manifest calldata m, uint64[] calldata idx)
        external
    {
        require(msg.sender == address(this));
        vm.prank(buyer);
        market.purchaseFor{value: value}(m, idx);
    }

    /// @dev A gift bought with an EIP-2612 permit. `mode % 4`: 0 a valid permit, 1 a valid permit someone front-ran
    /// (submitted to the token first), 2 an expired permit, 3 a permit signed by another key. Must go through
    /// exactly for the permit token when the permit or the allowance left covers the price; ETH releases are refused
    /// with `UpdateMarketPermitForEthRelease`.
    function purchaseWithPermit(uint256 releaseSeed, uint256 deviceBits, uint8 mode) external {
        address buyer = vm.addr(PERMIT_BUYER_KEY);
        uint256 k = releaseSeed % RELEASES;
        IUpdateRegistry.Manifest memory m = manifests[k];
        uint64[] memory idx = _devices(deviceBits, address(0));
        if (idx.length == 0) return;
        uint256 amount = uint256(m.price) * idx.length;
        uint256 fresh;
        for (uint256 i; i < idx.length; ++i) {
            if (!ghostEntitled[ids[k]][idx[i]]) ++fresh;
        }
        uint256 charged = uint256(m.price) * fresh;
        mode %= 4;
        bool isPermitToken = m.paymentToken == address(ptoken);
        IUpdateMarket.Permit memory p;
        if (isPermitToken) {
            ptoken.mint(buyer, amount);
            uint256 deadline = mode == 2 ? block.timestamp - 1 : block.timestamp + 1 hours;
            p = _signPermit(mode == 3 ? WRONG_KEY : PERMIT_BUYER_KEY, buyer, amount, deadline);
            if (mode == 1) ptoken.permit(buyer, address(market), p.value, p.deadline, p.v, p.r, p.s);
        }
        bool covered = isPermitToken && (mode <= 1 || ptoken.allowance(buyer, address(market)) >= charged);
        IUpdateRegistry.Release memory r = registry.release(ids[k]);
        bool mustSucceed = covered && fresh != 0 && r.revokedAt == 0 && m.expiry > block.timestamp;
        uint256 before = isPermitToken ? ptoken.balanceOf(buyer) : 0;
        try this.doPurchaseWithPermit(buyer, m, idx, p) {
            _check(isPermitToken, "permit purchase of a release without permit token accepted");
            _check(covered, "permit purchase without permit or allowance accepted");
            _check(fresh != 0, "permit purchase of entitled devices only accepted");
            _check(r.revokedAt == 0, "permit purchase of a revoked release accepted");
            _check(ptoken.balanceOf(buyer) == before - charged, "permit purchase charged a wrong amount");
            for (uint256 i; i < idx.length; ++i) {
                ghostEntitled[ids[k]][idx[i]] = true;
            }
            ghostEscrow[ids[k]] += charged;
            ++permitPurchases;
        } catch (bytes memory err) {
            _check(!mustSucceed, "valid permit purchase refused");
            if (m.paymentToken == address(0)) {
                _check(
                    bytes4(err) == IUpdateMarket.UpdateMarketPermitForEthRelease.selector,
                    "permit purchase of an ETH release not refused with UpdateMarketPermitForEthRelease"
                );
            }
        }
    }

    function doPurchaseWithPermit(
        address buyer,
        IUpdateRegistry.Manifest calldata m,
        uint64[] calldata idx,
        IUpdateMarket.Permit calldata p
    ) external {
        require(msg.sender == address(this));
        vm.prank(buyer);
        market.purchaseForWithPermit(m, idx, p);
    }

    function refund(uint256 actorSeed, uint256 releaseSeed, uint256 deviceBits) external {
        address owner = actors[actorSeed % 3];
        uint256 k = releaseSeed % RELEASES;
        uint64[] memory idx = _devices(deviceBits, owner);
        if (idx.length == 0) return;
        IUpdateRegistry.Manifest memory m = manifests[k];
        IUpdateRegistry.Release memory r = registry.release(ids[k]);
        bool allEntitled = true;
        for (uint256 i; i < idx.length; ++i) {
            allEntitled = allEntitled && ghostEntitled[ids[k]][idx[i]];
        }
        bool refundable = r.revokedAt != 0 && r.revokedAt < uint256(r.publishedAt) + WINDOW;
        uint256 amount = uint256(m.price) * idx.length;
        uint256 before = _balance(m.paymentToken, owner);
        vm.prank(owner);
        try market.claimRefund(m, idx) {
            _check(refundable && allEntitled, "refund of a device not refundable");
            _check(_balance(m.paymentToken, owner) == before + amount, "refund paid a wrong amount");
            for (uint256 i; i < idx.length; ++i) {
                ghostEntitled[ids[k]][idx[i]] = false;
            }
            ghostEscrow[ids[k]] -= amount;
            ++refunds;
        } catch {
            _check(!(refundable && allEntitled), "valid refund refused");
        }
    }

    function withdraw(uint256 releaseSeed) external {
        uint256 k = releaseSeed % RELEASES;
        IUpdateRegistry.Manifest memory m = manifests[k];
        IUpdateRegistry.Release memory r = registry.release(ids[k]);
        uint256 settles = uint256(r.publishedAt) + WINDOW;
        bool refundable = r.revokedAt != 0 && r.revokedAt < settles;
        bool due = !refundable && block.timestamp >= settles && ghostEscrow[ids[k]] != 0;
        uint256 before = _balance(m.paymentToken, PAYEE);
        try market.withdraw(m) {
            _check(due, "withdrawal not due accepted");
            _check(_balance(m.paymentToken, PAYEE) == before + ghostEscrow[ids[k]], "withdrawal paid a wrong amount");
            ghostEscrow[ids[k]] = 0;
            ++withdrawals;
        } catch {
            _check(!due, "due withdrawal refused");
        }
    }

    function revoke(uint256 releaseSeed) external {
        if ((releaseSeed >> 8) % 4 != 0) return; // revocations are rare, or nothing is left to buy
        try registry.emergencyRevoke(ids[releaseSeed % RELEASES], "inv") {} catch {}
    }

    function transfer(uint256 deviceSeed, uint256 toSeed) external {
        uint64 d = first + uint64(deviceSeed % DEVICES);
        address owner = registry.device(d).owner;
        vm.prank(owner);
        registry.transferDevice(d, actors[toSeed % 3]);
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + (secs % 4 days));
    }

    // ---------------------------------------------------------------- views

    function manifest(uint256 k) external view returns (IUpdateRegistry.Manifest memory) {
        return manifests[k];
    }

    // ---------------------------------------------------------------- internal

    /// @dev The ascending device indexes selected by `bits` (owned by `owner`, unless zero).
    function _devices(uint256 bits, address owner) internal view returns (uint64[] memory idx) {
        uint64[] memory tmp = new uint64[](DEVICES);
        uint256 n;
        for (uint256 i; i < DEVICES; ++i) {
            if (bits & (1 << i) == 0) continue;
            uint64 d = first + uint64(i);
            if (owner != address(0) && registry.device(d).owner != owner) continue;
            tmp[n++] = d;
        }
        idx = new uint64[](n);
        for (uint256 i; i < n; ++i) {
            idx[i] = tmp[i];
        }
    }

    function _signPermit(uint256 key, address owner, uint256 value, uint256 deadline)
        internal
        view
        returns (IUpdateMarket.Permit memory p)
    {
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, owner, address(market), value, ptoken.nonces(owner), deadline));
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", ptoken.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        p = IUpdateMarket.Permit({value: value, deadline: deadline, v: v, r: r, s: s});
    }

    function _check(bool ok, string memory what) internal {
        if (ok) return;
        if (violations == 0) firstViolation = what;
        ++violations;
    }

    function _balance(address tok, address who) internal view returns (uint256) {
        if (tok == address(0)) return who.balance;
        return MockERC20(tok).balanceOf(who);
    }

    function _devKey(uint256 i) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode("inv-device", i))) % 1e70 + 1;
    }

    function _dev(uint256 i) internal pure returns (address) {
        return vm.addr(_devKey(i));
    }
}
