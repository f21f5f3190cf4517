// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateMarket} from "./interfaces/IUpdateMarket.sol";
import {IUpdateRegistry} from "./interfaces/IUpdateRegistry.sol";
import {ManifestHash} from "./libraries/ManifestHash.sol";

/// @title UpdateMarket
/// @notice Sells firmware releases per device. Entitlements are bits over device indexes; the money for a release
/// is escrowed until `publishedAt + REFUND_WINDOW`, then withdrawable to the manufacturer's payee. If the release
/// is revoked before that time, the devices' owners claim the price back per device instead.
/// @dev Callers pass the release's manifest; the market hashes it and checks the registry has published that id,
/// so price, token and model need no storage here. All payments are pulled (checks-effects-interactions under a
/// transient-storage reentrancy lock). Fee-on-transfer tokens are rejected by a balance-delta check.
contract UpdateMarket is IUpdateMarket {
    // ---------------------------------------------------------------- storage (slot order is part of the protocol)

    /// @dev slot 0: release id => word index => entitlement bits of devices 256 * word .. 256 * word + 255.
    mapping(bytes32 releaseId => mapping(uint256 wordIndex => uint256 bits)) internal _entitlements;
    /// @dev slot 1: release id => amount held for the release (escrowed, withdrawable or refundable).
    mapping(bytes32 releaseId => uint256 amount) internal _escrow;

    // ---------------------------------------------------------------- constants

    /// @inheritdoc IUpdateMarket
    IUpdateRegistry public immutable REGISTRY;
    /// @inheritdoc IUpdateMarket
    uint256 public immutable REFUND_WINDOW;

    /// @inheritdoc IUpdateMarket
    uint256 public constant MAX_REFUND_WINDOW = 365 days;

    /// @dev Transient slot of the reentrancy lock: uint256(keccak256("otaledger.UpdateMarket.lock")) - 1.
    uint256 internal constant _LOCK_SLOT = 0x3c21a8e8f360b35c6615de60fc23e7974182c92c6927b38ab23547274df8851a;

    /// @param registry the registry whose releases are sold.
    /// @param refundWindow seconds after a release's publication during which a revocation refunds its buyers, at
    /// most `MAX_REFUND_WINDOW` (so `publishedAt + refundWindow` cannot overflow and every escrow settles).
    constructor(IUpdateRegistry registry, uint256 refundWindow) {
        if (address(registry) == address(0)) revert UpdateMarketZeroRegistry();
        if (refundWindow > MAX_REFUND_WINDOW) revert UpdateMarketRefundWindowTooLong(refundWindow, MAX_REFUND_WINDOW);
        REGISTRY = registry;
        REFUND_WINDOW = refundWindow;
    }

    /// @dev One transient-storage lock for every state-changing function (EIP-1153, cleared on exit).
    modifier nonReentrant() {
        assembly ("memory-safe") {
            if tload(_LOCK_SLOT) {
                mstore(0, 0x3f006698) // UpdateMarketReentrant()
                revert(0x1c, 0x04)
            }
            tstore(_LOCK_SLOT, 1)
        }
        _;
        assembly ("memory-safe") {
            tstore(_LOCK_SLOT, 0)
        }
    }

    // ---------------------------------------------------------------- external

    /// @inheritdoc IUpdateMarket
    function purchase(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes)
        external
        payable
        nonReentrant
    {
        (address token, uint256 amount, uint256 quoted) = _purchase(manifest, deviceIndexes, msg.sender);
        _collect(token, amount, quoted);
    }

    /// @inheritdoc IUpdateMarket
    function purchaseFor(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes)
        external
        payable
        nonReentrant
    {
        (address token, uint256 amount, uint256 quoted) = _purchase(manifest, deviceIndexes, address(0));
        _collect(token, amount, quoted);
    }

    /// @inheritdoc IUpdateMarket
    function purchaseWithPermit(
        IUpdateRegistry.Manifest calldata manifest,
        uint64[] calldata deviceIndexes,
        Permit calldata permit
    ) external nonReentrant {
        if (manifest.paymentToken == address(0)) {
            revert UpdateMarketPermitForEthRelease();
        }
        (address token, uint256 amount, uint256 quoted) = _purchase(manifest, deviceIndexes, msg.sender);
        _permit(token, amount, permit);
        _collect(token, amount, quoted);
    }

    /// @inheritdoc IUpdateMarket
    function purchaseForWithPermit(
        IUpdateRegistry.Manifest calldata manifest,
        uint64[] calldata deviceIndexes,
        Permit calldata permit
    ) external nonReentrant {
        if (manifest.paymentToken == address(0)) {
            revert UpdateMarketPermitForEthRelease();
        }
        (address token, uint256 amount, uint256 quoted) = _purchase(manifest, deviceIndexes, address(0));
        _permit(token, amount, permit);
        _collect(token, amount, quoted);
    }

    /// @inheritdoc IUpdateMarket
    function claimRefund(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes)
        external
        nonReentrant
    {
        uint256 n = deviceIndexes.length;
        if (n == 0) revert UpdateMarketNoDevices();
        bytes32 id = ManifestHash.hash(manifest);
        IUpdateRegistry.Release memory r = _publishedRelease(id);
        if (r.revokedAt == 0 || r.revokedAt >= uint256(r.publishedAt) + REFUND_WINDOW) {
            revert UpdateMarketNotRefundable(id);
        }
        REGISTRY.checkDevices(msg.sender, r.modelId, false, deviceIndexes);
        _clearBits(id, deviceIndexes);
        uint256 amount = uint256(manifest.price) * n;
        // Every cleared bit was paid at `price` and the escrow of a refundable release is never withdrawn.
        _escrow[id] -= amount;
        address token = manifest.paymentToken;
        emit Refunded(id, msg.sender, deviceIndexes, amount, token);
        _pay(token, msg.sender, amount);
    }

    /// @inheritdoc IUpdateMarket
    function withdraw(IUpdateRegistry.Manifest calldata manifest) external nonReentrant {
        bytes32 id = ManifestHash.hash(manifest);
        IUpdateRegistry.Release memory r = _publishedRelease(id);
        uint256 settles = uint256(r.publishedAt) + REFUND_WINDOW;
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp < settles) revert UpdateMarketNotSettled(id, settles);
        if (r.revokedAt != 0 && r.revokedAt < settles) revert UpdateMarketEarningsRefundable(id);
        uint256 amount = _escrow[id];
        if (amount == 0) revert UpdateMarketNothingToWithdraw(id);
        _escrow[id] = 0;
        uint32 manufacturerId = REGISTRY.model(r.modelId).manufacturerId;
        address payee = REGISTRY.manufacturer(manufacturerId).payee;
        address token = manifest.paymentToken;
        emit Withdrawn(id, manufacturerId, payee, amount, token);
        _pay(token, payee, amount);
    }

    /// @inheritdoc IUpdateMarket
    function isEntitled(bytes32 releaseId, uint64 deviceIndex) external view returns (bool) {
        return (_entitlements[releaseId][deviceIndex >> 8] >> (deviceIndex & 255)) & 1 == 1;
    }

    /// @inheritdoc IUpdateMarket
    function entitlementWord(bytes32 releaseId, uint256 wordIndex) external view returns (uint256) {
        return _entitlements[releaseId][wordIndex];
    }

    /// @inheritdoc IUpdateMarket
    function escrowOf(bytes32 releaseId) external view returns (uint256) {
        return _escrow[releaseId];
    }

    /// @inheritdoc IUpdateMarket
    function settlesAt(bytes32 releaseId) external view returns (uint256) {
        return uint256(_publishedRelease(releaseId).publishedAt) + REFUND_WINDOW;
    }

    // ---------------------------------------------------------------- internal

    /// @dev Checks the release and devices (owned by `owner`, or any owner if zero), sets the entitlement bits of
    /// the devices not yet entitled and escrows their price; the caller then collects the payment (`_collect`, after
    /// every effect). Devices already entitled (e.g. gifted with `purchaseFor` while the purchase was pending) are
    /// skipped and not charged; if every device is, the purchase reverts (nothing to buy).
    /// @return token the payment token (zero: ETH).
    /// @return amount the price of the devices bought.
    /// @return quoted the price of every listed device.
    function _purchase(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes, address owner)
        internal
        returns (address token, uint256 amount, uint256 quoted)
    {
        uint256 n = deviceIndexes.length;
        if (n == 0) revert UpdateMarketNoDevices();
        bytes32 id = ManifestHash.hash(manifest);
        IUpdateRegistry.Release memory r = _publishedRelease(id);
        if (r.revokedAt != 0) revert UpdateMarketReleaseRevoked(id);
        uint64 expiry = manifest.expiry;
        // forge-lint: disable-next-line(block-timestamp)
        if (expiry <= block.timestamp) revert UpdateMarketReleaseExpired(id, expiry);
        REGISTRY.checkDevices(owner, r.modelId, true, deviceIndexes);
        (uint256 bought, uint64[] memory boughtList) = _setBits(id, deviceIndexes);
        if (bought == 0) revert UpdateMarketAlreadyEntitled(id, deviceIndexes[0]);
        uint256 price = manifest.price;
        amount = price * bought;
        quoted = price * n;
        _escrow[id] += amount;
        token = manifest.paymentToken;
        emit Purchased(id, msg.sender, boughtList, amount, token);
    }

    /// @dev Applies the caller's EIP-2612 permit letting the market spend `amount` of `token`. A permit that fails
    /// (typically because someone front-ran it by submitting the same signature to the token first, which uses
    /// its nonce) is ignored when the allowance already covers `amount`: a front-run permit must not block the
    /// purchase. Otherwise the purchase reverts with `UpdateMarketPermitFailed`.
    function _permit(address token, uint256 amount, Permit calldata permit) internal {
        (bool ok,) = token.call(
            abi.encodeWithSelector(
                0xd505accf, msg.sender, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s
            )
        );
        if (ok) return;
        (bool read, bytes memory ret) = token.staticcall(abi.encodeWithSelector(0xdd62ed3e, msg.sender, address(this)));
        uint256 allowance = read && ret.length >= 32 ? abi.decode(ret, (uint256)) : 0;
        if (allowance < amount) revert UpdateMarketPermitFailed(token, amount, allowance);
    }

    /// @dev The registry's status of a published release; reverts for unknown ids.
    function _publishedRelease(bytes32 id) internal view returns (IUpdateRegistry.Release memory r) {
        r = REGISTRY.release(id);
        if (r.publishedAt == 0) revert UpdateMarketUnknownRelease(id);
    }

    /// @dev Sets the bits of strictly ascending device indexes, one storage write per word, skipping devices whose
    /// bit is already set.
    /// @return bought how many bits were set.
    /// @return boughtList the indexes whose bits were set.
    function _setBits(bytes32 id, uint64[] calldata deviceIndexes)
        internal
        returns (uint256 bought, uint64[] memory boughtList)
    {
        mapping(uint256 => uint256) storage words = _entitlements[id];
        uint256 n = deviceIndexes.length;
        boughtList = new uint64[](n);
        uint256 wordIndex = uint256(deviceIndexes[0]) >> 8;
        uint256 bits = words[wordIndex];
        uint64 prev = 0;
        for (uint256 i; i < n;) {
            uint64 index = deviceIndexes[i];
            if (i != 0 && index <= prev) revert UpdateMarketDevicesNotAscending(i, index);
            prev = index;
            uint256 w = uint256(index) >> 8;
            if (w != wordIndex) {
                words[wordIndex] = bits;
                wordIndex = w;
                bits = words[w];
            }
            // forge-lint: disable-next-line(incorrect-shift)
            uint256 mask = uint256(1) << (index & 255);
            if (bits & mask == 0) {
                bits |= mask;
                boughtList[bought] = index;
                unchecked {
                    ++bought;
                }
            }
            unchecked {
                ++i;
            }
        }
        words[wordIndex] = bits;
        assembly ("memory-safe") {
            mstore(boughtList, bought) // shrink to the bought indexes
        }
    }

    /// @dev Clears the bits of strictly ascending device indexes, one storage write per word; reverts if a bit is
    /// not set.
    function _clearBits(bytes32 id, uint64[] calldata deviceIndexes) internal {
        mapping(uint256 => uint256) storage words = _entitlements[id];
        uint256 n = deviceIndexes.length;
        uint256 wordIndex = uint256(deviceIndexes[0]) >> 8;
        uint256 bits = words[wordIndex];
        uint64 prev = 0;
        for (uint256 i; i < n;) {
            uint64 index = deviceIndexes[i];
            if (i != 0 && index <= prev) revert UpdateMarketDevicesNotAscending(i, index);
            prev = index;
            uint256 w = uint256(index) >> 8;
            if (w != wordIndex) {
                words[wordIndex] = bits;
                wordIndex = w;
                bits = words[w];
            }
            // forge-lint: disable-next-line(incorrect-shift)
            uint256 mask = uint256(1) << (index & 255);
            if (bits & mask == 0) revert UpdateMarketNotEntitled(id, index);
            bits ^= mask;
            unchecked {
                ++i;
            }
        }
        words[wordIndex] = bits;
    }

    /// @dev Takes `amount` from the caller for a purchase quoted at `quoted` (the price of every listed device).
    /// ETH: `msg.value` must be exactly `quoted`, and the price of skipped devices (`quoted - amount`) is sent
    /// back to the caller. ERC-20: no ETH, and a `transferFrom` of `amount` whose received amount must equal it.
    function _collect(address token, uint256 amount, uint256 quoted) internal {
        if (token == address(0)) {
            if (msg.value != quoted) revert UpdateMarketWrongPayment(quoted, msg.value);
            _pay(address(0), msg.sender, quoted - amount);
            return;
        }
        if (msg.value != 0) revert UpdateMarketWrongPayment(0, msg.value);
        if (amount == 0) return;
        uint256 before = _balanceOf(token);
        _callToken(token, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
        uint256 received = _balanceOf(token) - before;
        if (received != amount) revert UpdateMarketTokenAmountMismatch(token, amount, received);
    }

    /// @dev Sends `amount` of ETH (token zero) or an ERC-20 token to `to`.
    function _pay(address token, address to, uint256 amount) internal {
        if (amount == 0) return;
        if (token == address(0)) {
            // `to` is the caller (a refund to the device owner, or the price of devices a purchase skipped) or
            // the manufacturer's payee set by its signers; see docs/security.md (arbitrary-send-eth).
            // slither-disable-next-line arbitrary-send-eth
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert UpdateMarketEthTransferFailed(to, amount);
        } else {
            _callToken(token, abi.encodeWithSelector(0xa9059cbb, to, amount));
        }
    }

    /// @dev Calls an ERC-20 function; success = no revert and either no return data (USDT style, from a contract)
    /// or a return value of true.
    function _callToken(address token, bytes memory data) internal {
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok || (ret.length == 0 ? token.code.length == 0 : (ret.length < 32 || abi.decode(ret, (uint256)) != 1))) {
            revert UpdateMarketTokenTransferFailed(token);
        }
    }

    /// @dev The market's balance of an ERC-20 token.
    function _balanceOf(address token) internal view returns (uint256 balance) {
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeWithSelector(0x70a08231, address(this)));
        if (!ok || ret.length < 32) revert UpdateMarketTokenTransferFailed(token);
        balance = abi.decode(ret, (uint256));
    }
}
