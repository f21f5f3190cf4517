// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "./IUpdateRegistry.sol";

/// @title IUpdateMarket
/// @notice Sells releases per device in ETH or the release's ERC-20 token, records entitlements in bitmaps over
/// device indexes, escrows earnings for a refund window and refunds buyers of releases revoked inside it.
/// @dev Types, errors and events of `UpdateMarket`. Payment rules and the entitlement slot formula are in
/// docs/contracts.md.
interface IUpdateMarket {
    // ---------------------------------------------------------------- types

    /// @notice An EIP-2612 permit signed by the buyer for the market (spender) on the release's payment token.
    /// @dev `value` and `deadline` are the values the buyer signed; `v`, `r`, `s` the signature.
    struct Permit {
        uint256 value;
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    // ---------------------------------------------------------------- errors

    /// @notice The device list is empty.
    error UpdateMarketNoDevices();
    /// @notice Device indexes must be strictly ascending.
    error UpdateMarketDevicesNotAscending(uint256 position, uint64 deviceIndex);
    /// @notice The device already holds an entitlement for the release.
    error UpdateMarketAlreadyEntitled(bytes32 releaseId, uint64 deviceIndex);
    /// @notice The device holds no entitlement for the release.
    error UpdateMarketNotEntitled(bytes32 releaseId, uint64 deviceIndex);
    /// @notice `msg.value` is not the exact amount due (zero for ERC-20 releases).
    error UpdateMarketWrongPayment(uint256 expected, uint256 given);
    /// @notice The manifest is not a published release of the registry.
    error UpdateMarketUnknownRelease(bytes32 releaseId);
    /// @notice The release's manifest has expired.
    error UpdateMarketReleaseExpired(bytes32 releaseId, uint64 expiry);
    /// @notice The release is revoked and cannot be bought.
    error UpdateMarketReleaseRevoked(bytes32 releaseId);
    /// @notice The release was not revoked inside its refund window.
    error UpdateMarketNotRefundable(bytes32 releaseId);
    /// @notice The release's earnings are refundable to buyers, not withdrawable.
    error UpdateMarketEarningsRefundable(bytes32 releaseId);
    /// @notice The release's refund window has not ended yet.
    error UpdateMarketNotSettled(bytes32 releaseId, uint256 settlesAt);
    /// @notice Nothing is escrowed for the release.
    error UpdateMarketNothingToWithdraw(bytes32 releaseId);
    /// @notice An ERC-20 transfer reverted or returned false.
    error UpdateMarketTokenTransferFailed(address token);
    /// @notice The market received another amount than was transferred (fee-on-transfer tokens are rejected).
    error UpdateMarketTokenAmountMismatch(address token, uint256 expected, uint256 received);
    /// @notice An ETH transfer failed.
    error UpdateMarketEthTransferFailed(address to, uint256 amount);
    /// @notice A function was re-entered.
    error UpdateMarketReentrant();
    /// @notice The registry address is zero.
    error UpdateMarketZeroRegistry();
    /// @notice The refund window is longer than `MAX_REFUND_WINDOW`.
    error UpdateMarketRefundWindowTooLong(uint256 refundWindow, uint256 maxRefundWindow);
    /// @notice A permit purchase of a release priced in ETH (permits exist for ERC-20 tokens only).
    error UpdateMarketPermitForEthRelease();
    /// @notice The permit was refused by the token and the allowance does not cover the amount due.
    error UpdateMarketPermitFailed(address token, uint256 needed, uint256 allowance);

    // ---------------------------------------------------------------- events

    /// @notice `buyer` paid `amount` of `token` (zero = ETH) for entitlements of `deviceIndexes` to `releaseId`.
    event Purchased(
        bytes32 indexed releaseId, address indexed buyer, uint64[] deviceIndexes, uint256 amount, address token
    );
    /// @notice `owner` received a refund for the entitlements of `deviceIndexes` to a revoked release.
    event Refunded(
        bytes32 indexed releaseId, address indexed owner, uint64[] deviceIndexes, uint256 amount, address token
    );
    /// @notice A release's escrowed earnings were paid to the manufacturer's payee.
    event Withdrawn(
        bytes32 indexed releaseId, uint32 indexed manufacturerId, address indexed payee, uint256 amount, address token
    );

    // ---------------------------------------------------------------- functions

    /// @notice Buys the release for devices the caller owns (claimed, active, of the release's model).
    /// @dev Quoted at `price * deviceIndexes.length`. Devices already entitled (e.g. gifted with `purchaseFor`
    /// while this purchase was pending) are skipped and not charged; if all are, it reverts with
    /// `UpdateMarketAlreadyEntitled`. ETH releases: `msg.value` must be exactly the quote and the price of skipped
    /// devices is sent back to the caller. ERC-20 releases: no ETH; `transferFrom` of the price of the devices
    /// bought only (approve the market first). `Purchased` lists the devices bought and the amount charged.
    /// @param manifest the release's manifest, exactly as published.
    /// @param deviceIndexes the devices, strictly ascending.
    function purchase(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes) external payable;

    /// @notice Buys the release as a gift for devices of any owner (claimed, active, of the release's model).
    /// @dev Same payment and skipping rules as `purchase`; entitlements and any refund belong to the devices'
    /// owners.
    /// @param manifest the release's manifest, exactly as published.
    /// @param deviceIndexes the devices, strictly ascending.
    function purchaseFor(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes) external payable;

    /// @notice `purchase` of an ERC-20 release, approving the market with the caller's EIP-2612 permit in the same
    /// transaction (no separate `approve`).
    /// @dev The permit is applied after the entitlements are recorded and before the `transferFrom`. A permit that
    /// the token refuses (expired, wrong signer, or already used because someone front-ran it) is ignored when the
    /// caller's allowance already covers the price of the devices bought; otherwise the call reverts with
    /// `UpdateMarketPermitFailed`. Reverts with `UpdateMarketPermitForEthRelease` for ETH releases.
    /// @param manifest the release's manifest, exactly as published.
    /// @param deviceIndexes the devices, strictly ascending.
    /// @param permit the caller's permit (owner = caller, spender = this market).
    function purchaseWithPermit(
        IUpdateRegistry.Manifest calldata manifest,
        uint64[] calldata deviceIndexes,
        Permit calldata permit
    ) external;

    /// @notice `purchaseFor` (a gift to devices of any owner) of an ERC-20 release, paid with the caller's EIP-2612
    /// permit; same permit rules as `purchaseWithPermit`.
    /// @param manifest the release's manifest, exactly as published.
    /// @param deviceIndexes the devices, strictly ascending.
    /// @param permit the caller's permit (owner = caller, spender = this market).
    function purchaseForWithPermit(
        IUpdateRegistry.Manifest calldata manifest,
        uint64[] calldata deviceIndexes,
        Permit calldata permit
    ) external;

    /// @notice Refunds the price per device to the devices' current owner (the caller) for a release revoked
    /// inside its refund window; the entitlements are cleared.
    /// @param manifest the release's manifest, exactly as published.
    /// @param deviceIndexes the caller's entitled devices, strictly ascending.
    function claimRefund(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes) external;

    /// @notice Pays a settled release's escrow to its manufacturer's payee. Anyone may call.
    /// @param manifest the release's manifest, exactly as published.
    function withdraw(IUpdateRegistry.Manifest calldata manifest) external;

    /// @notice Whether `deviceIndex` holds an entitlement for `releaseId`.
    /// @param releaseId the release id (the manifest's EIP-712 struct hash).
    /// @param deviceIndex the device.
    /// @return entitled true if the device's bit is set.
    function isEntitled(bytes32 releaseId, uint64 deviceIndex) external view returns (bool entitled);

    /// @notice The entitlement bitmap word `wordIndex` (devices `256 * wordIndex ..`) of a release.
    /// @param releaseId the release id.
    /// @param wordIndex the word (device index >> 8).
    /// @return bits bit i set = device `256 * wordIndex + i` is entitled.
    function entitlementWord(bytes32 releaseId, uint256 wordIndex) external view returns (uint256 bits);

    /// @notice The amount escrowed for a release (in its payment token).
    /// @param releaseId the release id.
    /// @return amount escrowed, withdrawable or refundable amount held for the release.
    function escrowOf(bytes32 releaseId) external view returns (uint256 amount);

    /// @notice The time from which a release's escrow may be withdrawn (`publishedAt + refundWindow`).
    /// @param releaseId the release id (must be published).
    /// @return timestamp the settlement time in seconds.
    function settlesAt(bytes32 releaseId) external view returns (uint256 timestamp);

    /// @notice The registry this market sells releases of.
    /// @return registry the `UpdateRegistry`.
    function REGISTRY() external view returns (IUpdateRegistry registry);

    /// @notice The refund window in seconds.
    /// @return window seconds after publication during which a revocation refunds buyers.
    function REFUND_WINDOW() external view returns (uint256 window);

    /// @notice The longest refund window a market accepts (365 days).
    /// @return window the bound in seconds.
    function MAX_REFUND_WINDOW() external view returns (uint256 window);
}
