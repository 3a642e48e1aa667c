// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IKuotaToken} from "./interfaces/IKuotaToken.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {RewardMath} from "./libraries/RewardMath.sol";

/// @title Staking
/// @notice Bonded KuotaToken stake behind node operators; one unbonding bucket per operator.
contract Staking is IStaking, AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    bytes32 public constant PARAMETER_ROLE = keccak256("PARAMETER_ROLE");
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    uint64 public constant MAX_UNBONDING_PERIOD = 90 days;
    uint16 public constant MAX_SLASH_REPORTER_BPS = 5_000;

    struct StakeAccount {
        uint128 bonded;
        uint128 unbonding;
        uint64 withdrawableAt;
    }

    IERC20 private immutable _stakeToken;

    mapping(address operator => StakeAccount) private _accounts;
    uint256 private _totalBonded;
    uint256 private _totalUnbonding;
    INodeRegistry private _registry;
    uint64 private _unbondingPeriod;
    uint16 private _slashReporterBps;

    /// @param admin Receives DEFAULT_ADMIN_ROLE and PARAMETER_ROLE.
    /// @param stakeToken_ The KuotaToken (must support `burn`).
    constructor(address admin, address stakeToken_, uint64 unbondingPeriod_, uint16 slashReporterBps_) {
        if (admin == address(0)) revert StakingZeroAddress("admin");
        if (stakeToken_ == address(0)) revert StakingZeroAddress("stakeToken");
        _checkUnbondingPeriod(unbondingPeriod_);
        _checkSlashReporterBps(slashReporterBps_);
        _stakeToken = IERC20(stakeToken_);
        _unbondingPeriod = unbondingPeriod_;
        _slashReporterBps = slashReporterBps_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PARAMETER_ROLE, admin);
    }

    /// @inheritdoc IStaking
    function stake(uint256 amount) external nonReentrant {
        _stake(msg.sender, amount);
    }

    /// @inheritdoc IStaking
    function stakeFor(address operator, uint256 amount) external nonReentrant {
        if (operator == address(0)) revert StakingZeroAddress("operator");
        _stake(operator, amount);
    }

    /// @inheritdoc IStaking
    function requestUnbond(uint256 amount) external {
        if (amount == 0) revert StakingZeroAmount();
        StakeAccount storage account = _accounts[msg.sender];
        uint256 bonded = account.bonded;
        if (bonded < amount) revert StakingInsufficientStake(msg.sender, bonded, amount);
        uint256 remaining;
        unchecked {
            remaining = bonded - amount; // bonded >= amount checked above
        }
        INodeRegistry registry_ = _registry;
        uint256 required = address(registry_) == address(0) ? 0 : registry_.requiredStake(msg.sender);
        if (remaining < required) revert StakingStakeLocked(msg.sender, remaining, required);

        uint64 withdrawableAt = uint64(block.timestamp) + _unbondingPeriod;
        account.bonded = uint128(remaining);
        // unbonding + amount <= total supply of the stake token, which the bonded uint128 already held.
        account.unbonding += uint128(amount);
        account.withdrawableAt = withdrawableAt;
        _totalBonded -= amount;
        _totalUnbonding += amount;
        emit UnbondRequested(msg.sender, amount, withdrawableAt);
    }

    /// @inheritdoc IStaking
    function withdraw() external nonReentrant {
        StakeAccount storage account = _accounts[msg.sender];
        uint256 amount = account.unbonding;
        if (amount == 0) revert StakingNothingToWithdraw(msg.sender);
        uint64 withdrawableAt = account.withdrawableAt;
        if (block.timestamp < withdrawableAt) {
            revert StakingUnbondingNotFinished(msg.sender, withdrawableAt, block.timestamp);
        }
        account.unbonding = 0;
        account.withdrawableAt = 0;
        _totalUnbonding -= amount;
        emit StakeWithdrawn(msg.sender, amount);
        _stakeToken.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IStaking
    function slash(address operator, uint256 amount, address reporter) external onlyRole(SLASHER_ROLE) nonReentrant {
        if (amount == 0) revert StakingZeroAmount();
        StakeAccount storage account = _accounts[operator];
        uint256 bonded = account.bonded;
        uint256 unbonding = account.unbonding;
        if (bonded + unbonding == 0) revert StakingInsufficientStake(operator, 0, amount);

        // Bonded first, then the unbonding bucket: stake stays slashable until it is withdrawn.
        uint256 fromBonded = amount < bonded ? amount : bonded;
        uint256 rest = amount - fromBonded;
        uint256 fromUnbonding = rest < unbonding ? rest : unbonding;
        uint256 slashed = fromBonded + fromUnbonding;
        unchecked {
            // fromBonded <= bonded and fromUnbonding <= unbonding by construction.
            account.bonded = uint128(bonded - fromBonded);
            account.unbonding = uint128(unbonding - fromUnbonding);
        }
        _totalBonded -= fromBonded;
        _totalUnbonding -= fromUnbonding;

        uint256 reporterReward = reporter == address(0) ? 0 : RewardMath.bps(slashed, _slashReporterBps);
        uint256 burned = slashed - reporterReward;
        emit Slashed(operator, reporter, slashed, reporterReward, burned);
        if (reporterReward > 0) _stakeToken.safeTransfer(reporter, reporterReward);
        if (burned > 0) IKuotaToken(address(_stakeToken)).burn(burned);
    }

    /// @inheritdoc IStaking
    function setRegistry(address registry_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (registry_ == address(0)) revert StakingZeroAddress("registry");
        if (address(_registry) != address(0)) revert StakingRegistryAlreadySet(address(_registry));
        _registry = INodeRegistry(registry_);
        emit RegistrySet(registry_);
    }

    /// @inheritdoc IStaking
    function setUnbondingPeriod(uint64 unbondingPeriod_) external onlyRole(PARAMETER_ROLE) {
        _checkUnbondingPeriod(unbondingPeriod_);
        uint256 oldValue = _unbondingPeriod;
        _unbondingPeriod = unbondingPeriod_;
        emit ParameterUpdated("unbondingPeriod", oldValue, unbondingPeriod_);
    }

    /// @inheritdoc IStaking
    function setSlashReporterBps(uint16 slashReporterBps_) external onlyRole(PARAMETER_ROLE) {
        _checkSlashReporterBps(slashReporterBps_);
        uint256 oldValue = _slashReporterBps;
        _slashReporterBps = slashReporterBps_;
        emit ParameterUpdated("slashReporterBps", oldValue, slashReporterBps_);
    }

    /// @inheritdoc IStaking
    function bondedOf(address operator) external view returns (uint256) {
        return _accounts[operator].bonded;
    }

    /// @inheritdoc IStaking
    function unbondingOf(address operator) external view returns (uint256 amount, uint64 withdrawableAt) {
        StakeAccount storage account = _accounts[operator];
        return (account.unbonding, account.withdrawableAt);
    }

    /// @inheritdoc IStaking
    function totalBonded() external view returns (uint256) {
        return _totalBonded;
    }

    /// @inheritdoc IStaking
    function totalUnbonding() external view returns (uint256) {
        return _totalUnbonding;
    }

    /// @inheritdoc IStaking
    function unbondingPeriod() external view returns (uint64) {
        return _unbondingPeriod;
    }

    /// @inheritdoc IStaking
    function slashReporterBps() external view returns (uint16) {
        return _slashReporterBps;
    }

    /// @inheritdoc IStaking
    function stakeToken() external view returns (address) {
        return address(_stakeToken);
    }

    /// @inheritdoc IStaking
    function registry() external view returns (address) {
        return address(_registry);
    }

    function _stake(address operator, uint256 amount) private {
        if (amount == 0) revert StakingZeroAmount();
        _accounts[operator].bonded += SafeCast.toUint128(amount);
        _totalBonded += amount;
        emit Staked(operator, msg.sender, amount);
        _stakeToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    function _checkUnbondingPeriod(uint64 value) private pure {
        if (value > MAX_UNBONDING_PERIOD) {
            revert StakingParameterOutOfBounds("unbondingPeriod", value, 0, MAX_UNBONDING_PERIOD);
        }
    }

    function _checkSlashReporterBps(uint16 value) private pure {
        if (value > MAX_SLASH_REPORTER_BPS) {
            revert StakingParameterOutOfBounds("slashReporterBps", value, 0, MAX_SLASH_REPORTER_BPS);
        }
    }
}
