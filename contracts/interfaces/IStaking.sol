// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IStaking
/// @notice Operators bond KuotaToken behind their nodes. Unbonding waits `unbondingPeriod` and stays
/// slashable until withdrawn. Anyone may add stake for an operator; nobody but the operator can move it.
interface IStaking {
    /// @notice A zero amount was given.
    error StakingZeroAmount();
    /// @notice `operator` has `staked` bonded, less than the `required` amount.
    error StakingInsufficientStake(address operator, uint256 staked, uint256 required);
    /// @notice Unbonding would leave `remainingBonded` bonded, below the `required` by its registered nodes.
    error StakingStakeLocked(address operator, uint256 remainingBonded, uint256 required);
    /// @notice The unbonding bucket of `operator` becomes withdrawable at `withdrawableAt`; it is `now`.
    error StakingUnbondingNotFinished(address operator, uint64 withdrawableAt, uint256 now);
    /// @notice `operator` has nothing unbonding.
    error StakingNothingToWithdraw(address operator);
    /// @notice The registry is already set to `registry` (it can be set once).
    error StakingRegistryAlreadySet(address registry);
    /// @notice A zero address was given for `field`.
    error StakingZeroAddress(string field);
    /// @notice Parameter `name` set to `value`, outside [`min`, `max`].
    error StakingParameterOutOfBounds(string name, uint256 value, uint256 min, uint256 max);

    /// @notice `payer` bonded `amount` for `operator`.
    event Staked(address indexed operator, address indexed payer, uint256 amount);
    /// @notice `operator` moved `amount` to its unbonding bucket, withdrawable at `withdrawableAt`.
    event UnbondRequested(address indexed operator, uint256 amount, uint64 withdrawableAt);
    /// @notice `operator` withdrew `amount` of finished unbonding stake.
    event StakeWithdrawn(address indexed operator, uint256 amount);
    /// @notice `amount` of `operator`'s stake was slashed: `reporterReward` to `reporter`, `burned` burned.
    event Slashed(address indexed operator, address indexed reporter, uint256 amount, uint256 reporterReward, uint256 burned);
    /// @notice The registry was set (once).
    event RegistrySet(address indexed registry);
    /// @notice A bounded parameter changed.
    event ParameterUpdated(string name, uint256 oldValue, uint256 newValue);

    /// @notice Bonds `amount` of the caller's tokens for the caller.
    function stake(uint256 amount) external;

    /// @notice Bonds `amount` of the caller's tokens for `operator`. Only adds bonded stake: it never
    /// touches the operator's unbonding bucket or timer.
    function stakeFor(address operator, uint256 amount) external;

    /// @notice Moves `amount` from bonded to the caller's unbonding bucket and restarts its timer.
    /// @dev Reverts `StakingStakeLocked` if what stays bonded is below `registry.requiredStake(caller)`.
    function requestUnbond(uint256 amount) external;

    /// @notice Pays the caller's whole unbonding bucket once its timer has run out.
    function withdraw() external;

    /// @notice SLASHER_ROLE: slashes up to `amount` of `operator`'s stake (bonded first, then unbonding);
    /// `slashReporterBps` of what is slashed goes to `reporter` (none if it is the zero address), the rest is burned.
    function slash(address operator, uint256 amount, address reporter) external;

    /// @notice DEFAULT_ADMIN_ROLE, once: the NodeRegistry whose `requiredStake` locks bonded stake.
    function setRegistry(address newRegistry) external;

    /// @notice PARAMETER_ROLE: unbonding period in seconds, at most 90 days. Applies to later requests.
    function setUnbondingPeriod(uint64 newUnbondingPeriod) external;

    /// @notice PARAMETER_ROLE: reporter share of slashed stake, at most 5000 bps.
    function setSlashReporterBps(uint16 newSlashReporterBps) external;

    /// @notice Stake of `operator` that is bonded (locks nodes, earns the right to register).
    function bondedOf(address operator) external view returns (uint256);
    /// @notice The unbonding bucket of `operator` and when it becomes withdrawable (0 if empty).
    function unbondingOf(address operator) external view returns (uint256 amount, uint64 withdrawableAt);
    /// @notice Σ bonded stake of all operators.
    function totalBonded() external view returns (uint256);
    /// @notice Σ unbonding stake of all operators. `stakeToken.balanceOf(this) == totalBonded + totalUnbonding`.
    function totalUnbonding() external view returns (uint256);
    /// @notice Seconds between an unbond request and its withdrawal.
    function unbondingPeriod() external view returns (uint64);
    /// @notice Share of slashed stake paid to the reporter, in bps.
    function slashReporterBps() external view returns (uint16);
    /// @notice The staked token (KuotaToken).
    function stakeToken() external view returns (address);
    /// @notice The NodeRegistry whose `requiredStake` locks bonded stake (zero until set).
    function registry() external view returns (address);
}
