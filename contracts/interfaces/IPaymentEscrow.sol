// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IPaymentEscrow
/// @notice Consumers' prepaid balances in the payment token, node credits and accrued protocol fees.
/// Invariant: `paymentToken.balanceOf(escrow) == Σ available + Σ thawing + Σ laneFundsOf + Σ credits + accruedFees`
/// (deposits are credited by the balance the escrow actually received, so fee-on-transfer tokens
/// are accounted exactly).
interface IPaymentEscrow {
    error EscrowZeroAmount();
    error EscrowInsufficientAvailable(address consumer, uint256 available, uint256 needed);
    error EscrowThawNotFinished(address consumer, uint64 thawEndsAt, uint256 now);
    error EscrowNothingThawing(address consumer);
    error EscrowNothingToWithdraw(address node);
    error EscrowUnknownNode(address node);
    error EscrowZeroAddress(string field);
    /// @notice Crediting `fee` would take the unswept fees (`accrued`) past 2^96 − 1: call `sweepFees`.
    error EscrowFeesOverflow(uint256 accrued, uint256 fee);
    /// @notice Lane module `module` holds `funds` of lane funds; it tried to spend `needed`.
    error EscrowInsufficientLaneFunds(address module, uint256 funds, uint256 needed);
    /// @notice Parameter `name` set to `value`, outside [`min`, `max`].
    error EscrowParameterOutOfBounds(string name, uint256 value, uint256 min, uint256 max);

    event Deposited(address indexed consumer, address indexed payer, uint256 amount);
    event ThawRequested(address indexed consumer, uint256 amount, uint64 thawEndsAt);
    event ThawCancelled(address indexed consumer, uint256 amount);
    event Withdrawn(address indexed consumer, uint256 amount);
    event NodeCredited(address indexed node, uint256 net, uint256 fee);
    event LaneFundsAllocated(address indexed consumer, address indexed module, uint256 amount);
    event LaneFundsReleased(address indexed consumer, address indexed module, uint256 amount);
    event EarningsWithdrawn(address indexed node, address indexed payout, uint256 amount);
    event FeesSwept(address indexed treasury, uint256 amount);
    event TreasuryUpdated(address indexed oldTreasury, address indexed newTreasury);
    event ParameterUpdated(string name, uint256 oldValue, uint256 newValue);

    /// @notice Deposits `amount` for the caller; credits what the escrow actually received.
    function deposit(uint256 amount) external;

    /// @notice Deposits `amount` of the caller's tokens for `consumer`.
    function depositFor(address consumer, uint256 amount) external;

    /// @notice Moves `amount` from available to thawing and restarts the thaw timer.
    function requestThaw(uint256 amount) external;

    /// @notice Moves everything thawing back to available.
    function cancelThaw() external;

    /// @notice After the thaw ends, pays the caller what is left thawing (settlements that landed
    /// first may have taken part of it).
    function withdraw() external;

    /// @notice SETTLEMENT_ROLE: takes up to `amount` from `consumer` (available first, then thawing) and
    /// returns what was taken. Never reverts for lack of funds.
    function collect(address consumer, uint256 amount) external returns (uint256 paid);

    /// @notice SETTLEMENT_ROLE: credits `net` to `node` and `fee` to accrued protocol fees. The caller
    /// credits exactly what it collected.
    function creditNode(address node, uint256 net, uint256 fee) external;

    /// @notice LANES_ROLE: moves `amount` of `consumer`'s available funds to the caller's lane funds
    /// (the caller books them into the consumer's lanes). Reverts when `consumer` has less available.
    function allocateToLanes(address consumer, uint256 amount) external;

    /// @notice Moves `amount` of the caller's lane funds back to `consumer`'s available funds. Needs
    /// the funds, not LANES_ROLE, so a revoked module can still return closed lanes.
    function releaseFromLanes(address consumer, uint256 amount) external;

    /// @notice Pays `net` to `node`'s credit and `fee` to accrued fees out of the caller's lane funds.
    /// A module can never spend more than was allocated to it (the only gate: no role lookup).
    function payFromLanes(address node, uint256 net, uint256 fee) external;

    /// @notice Pays `node`'s credit to its registered payout address. Anyone may call; works while
    /// settlement is paused.
    function withdrawEarnings(address node) external returns (uint256 amount);

    /// @notice Pays accrued fees to the treasury. Anyone may call.
    function sweepFees() external returns (uint256 amount);

    /// @notice DEFAULT_ADMIN_ROLE: the fee receiver.
    function setTreasury(address newTreasury) external;

    /// @notice PARAMETER_ROLE: thawing period in seconds, at most 30 days. Applies to later thaw requests.
    function setThawingPeriod(uint64 newThawingPeriod) external;

    /// @notice `consumer`'s available and thawing balances and when the thaw ends (0 if nothing thaws).
    function accountOf(address consumer) external view returns (uint256 available, uint256 thawing, uint64 thawEndsAt);
    /// @notice What settlements take from first and what a thaw request can move.
    function availableOf(address consumer) external view returns (uint256);
    /// @notice Funds on their way out: withdrawable after the thaw, collectable by settlements until then.
    function thawingOf(address consumer) external view returns (uint256);
    /// @notice `node`'s settled earnings not yet paid to its payout address.
    function creditOf(address node) external view returns (uint256);
    /// @notice Funds allocated to lanes of lane module `module` and not yet paid or released.
    function laneFundsOf(address module) external view returns (uint256);
    /// @notice Protocol fees not yet swept to the treasury.
    function accruedFees() external view returns (uint256);
    /// @notice The ERC20 consumers pay in (set at deployment).
    function paymentToken() external view returns (address);
    /// @notice Receiver of protocol fees.
    function treasury() external view returns (address);
    /// @notice Seconds a thaw request waits before withdrawal.
    function thawingPeriod() external view returns (uint64);
    /// @notice The NodeRegistry read for payout addresses.
    function registry() external view returns (address);
}
