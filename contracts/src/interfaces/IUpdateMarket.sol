// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IUpdateRegistry} from "./IUpdateRegistry.sol";

/// @title IUpdateMarket
/// @notice Sells releases per device in ETH or the release's ERC-20 token, records entitlements in bitmaps over
/// device indexes, escrows earnings for a refund window and refunds buyers of releases revoked inside it.
/// @dev Types, errors and events of `UpdateMarket`. Payment rules and the entitlement slot formula are in
/// docs/contracts.md.
interface IUpdateMarket {
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
    /// @dev Pays exactly `price * deviceIndexes.length`: as `msg.value` for ETH releases, else by `transferFrom`
    /// (approve the market first). `deviceIndexes` strictly ascending; already entitled devices revert.
    function purchase(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes) external payable;

    /// @notice Buys the release as a gift for devices of any owner (claimed, active, of the release's model).
    /// @dev Same payment rules as `purchase`; entitlements and any refund belong to the devices' owners.
    function purchaseFor(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes) external payable;

    /// @notice Refunds the price per device to the devices' current owner (the caller) for a release revoked
    /// inside its refund window; the entitlements are cleared.
    function claimRefund(IUpdateRegistry.Manifest calldata manifest, uint64[] calldata deviceIndexes) external;

    /// @notice Pays a settled release's escrow to its manufacturer's payee. Anyone may call.
    function withdraw(IUpdateRegistry.Manifest calldata manifest) external;

    /// @notice Whether `deviceIndex` holds an entitlement for `releaseId`.
    function isEntitled(bytes32 releaseId, uint64 deviceIndex) external view returns (bool);

    /// @notice The entitlement bitmap word `wordIndex` (devices `256 * wordIndex ..`) of a release.
    function entitlementWord(bytes32 releaseId, uint256 wordIndex) external view returns (uint256);

    /// @notice The amount escrowed for a release (in its payment token).
    function escrowOf(bytes32 releaseId) external view returns (uint256);

    /// @notice The time from which a release's escrow may be withdrawn (`publishedAt + refundWindow`).
    function settlesAt(bytes32 releaseId) external view returns (uint256);

    /// @notice The registry this market sells releases of.
    function REGISTRY() external view returns (IUpdateRegistry);

    /// @notice The refund window in seconds.
    function REFUND_WINDOW() external view returns (uint256);
}
