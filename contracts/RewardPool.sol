// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IKuotaToken} from "./interfaces/IKuotaToken.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {IRewardPool} from "./interfaces/IRewardPool.sol";
import {RewardMath} from "./libraries/RewardMath.sol";

/// @title RewardPool
/// @notice Epoch rewards in KuotaToken, bounded by the protocol fees each node's settlements paid.
contract RewardPool is IRewardPool, AccessControl, Pausable {
    using SafeCast for uint256;

    bytes32 public constant PARAMETER_ROLE = keccak256("PARAMETER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant SETTLEMENT_ROLE = keccak256("SETTLEMENT_ROLE");
    uint256 public constant MAX_EPOCH_LENGTH = 365 days;
    uint256 public constant MAX_EMISSION_PER_EPOCH = 1e30;
    uint256 public constant MAX_REWARD_PER_FEE_UNIT = 1e24;
    uint32 public constant MAX_LATENCY_MS = 60_000;
    /// @notice Most epochs `claim` and the parameter setters finalise in one call (each costs about
    /// 30k gas, so this stays far below a block); longer backlogs go through `finalizeEpochs` first.
    uint256 public constant MAX_FINALIZE_PER_CALL = 200;

    /// @dev Parameters in force now (one slot).
    struct Params {
        uint128 emissionPerEpoch;
        uint80 rewardPerFeeUnit;
        uint16 maxNodeShareBps;
    }

    /// @dev The latency curve and the SETTLEMENT_ROLE holder granted last share one slot: a settlement
    /// reads the curve (`latencyCurve`) and then calls `recordUsage`, whose role check then finds the
    /// slot warm (~2,000 gas less per settle call than a cold AccessControl lookup). `settlement` is
    /// a cache of the role, not a second authority: any holder passes `_checkSettlement`.
    struct Curve {
        uint32 lowMs;
        uint32 highMs;
        uint16 floorBps;
        address settlement;
    }

    /// @dev One epoch in three slots: `totalCapped`/`paid` (recordUsage and claim), `scheduled`/`carry`
    /// (snapshot and finalisation), and the per-epoch rates (recordUsage and claim).
    struct Epoch {
        uint128 totalCapped;
        uint128 paid;
        uint128 scheduled;
        uint128 carry;
        uint128 cap;
        uint80 rewardPerFeeUnit;
        bool snapshotted;
    }

    /// @dev fee and weight of 120 bits hold 1.3e36 base units of payment token.
    struct NodeRecord {
        uint120 fee;
        uint120 weight;
        bool claimed;
    }

    IKuotaToken private immutable _rewardToken;
    INodeRegistry private immutable _registry;
    uint64 private immutable _genesis;
    uint64 private immutable _epochLength;

    // `_finalizedThrough` and `_totalClaimed` pack into the slot of Pausable's `_paused` (the last
    // base): a claim checks the pause, reads the finalised count and adds to the claimed total with
    // one cold storage read. 8 + 64 + 184 bits.
    uint64 private _finalizedThrough;
    uint184 private _totalClaimed;
    Params private _params;
    Curve private _curve;
    mapping(uint256 epoch => Epoch) private _epochs;
    mapping(address node => mapping(uint256 epoch => NodeRecord)) private _nodeEpochs;
    uint128 private _carry;
    uint128 private _totalEmitted;

    /// @param admin Receives DEFAULT_ADMIN_ROLE, PARAMETER_ROLE and PAUSER_ROLE (SETTLEMENT_ROLE is
    /// granted to ReceiptSettlement).
    constructor(
        address admin,
        address rewardToken_,
        address registry_,
        uint64 epochLength_,
        uint256 emissionPerEpoch_,
        uint256 rewardPerFeeUnit_,
        uint16 maxNodeShareBps_,
        uint32 latencyLowMs,
        uint32 latencyHighMs,
        uint16 latencyFloorBps
    ) {
        if (admin == address(0)) revert RewardsZeroAddress("admin");
        if (rewardToken_ == address(0)) revert RewardsZeroAddress("rewardToken");
        if (registry_ == address(0)) revert RewardsZeroAddress("registry");
        if (epochLength_ == 0 || epochLength_ > MAX_EPOCH_LENGTH) {
            revert RewardsParameterOutOfBounds("epochLength", epochLength_, 1, MAX_EPOCH_LENGTH);
        }
        _checkEmission(emissionPerEpoch_);
        _checkRewardPerFeeUnit(rewardPerFeeUnit_);
        _checkMaxNodeShare(maxNodeShareBps_);
        _checkCurve(latencyLowMs, latencyHighMs, latencyFloorBps);
        _rewardToken = IKuotaToken(rewardToken_);
        _registry = INodeRegistry(registry_);
        _genesis = uint64(block.timestamp);
        _epochLength = epochLength_;
        _params = Params(uint128(emissionPerEpoch_), uint80(rewardPerFeeUnit_), maxNodeShareBps_);
        _curve = Curve(latencyLowMs, latencyHighMs, latencyFloorBps, address(0));
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PARAMETER_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
    }

    /// @inheritdoc IRewardPool
    function recordUsage(address node, uint256 fee, uint256 weight) external {
        _checkSettlement();
        if (weight > fee) revert RewardsWeightExceedsFee(weight, fee);
        uint256 epoch = currentEpoch();
        Epoch storage ep = _epochs[epoch];
        if (!ep.snapshotted) _snapshot(ep);
        NodeRecord storage record = _nodeEpochs[node][epoch];
        uint256 oldWeight = record.weight;
        uint256 newWeight = oldWeight + weight;
        record.fee = (uint256(record.fee) + fee).toUint120();
        record.weight = newWeight.toUint120();
        if (weight > 0) {
            uint256 rate = ep.rewardPerFeeUnit;
            uint256 cap = ep.cap;
            // capped() is monotonic in weight, so the difference is never negative.
            uint256 added = RewardMath.capped(newWeight, rate, cap) - RewardMath.capped(oldWeight, rate, cap);
            if (added > 0) ep.totalCapped = (uint256(ep.totalCapped) + added).toUint128();
        }
        emit UsageRecorded(node, epoch, fee, weight);
    }

    /// @inheritdoc IRewardPool
    function finalizeEpochs(uint256 maxCount) external returns (uint256 count) {
        uint256 through = _finalizedThrough;
        uint256 target = currentEpoch();
        if (target <= through) return 0;
        // Compared as a difference: `through + maxCount` would overflow for maxCount = 2^256 - 1.
        if (target - through > maxCount) target = through + maxCount;
        _finalizeThrough(target);
        return target - through;
    }

    /// @inheritdoc IRewardPool
    function claim(address node, uint256[] calldata epochs) external whenNotPaused returns (uint256 amount) {
        uint256 count = epochs.length;
        if (count == 0) revert RewardsNothingToClaim(node);
        uint256 current = currentEpoch();
        uint256 last = 0;
        for (uint256 i; i < count; ++i) {
            uint256 epoch = epochs[i];
            if (epoch >= current) revert RewardsEpochNotFinished(epoch, current);
            if (epoch > last) last = epoch;
        }
        _finalizeThroughBounded(last + 1);

        address payout = _registry.payoutOf(node);
        if (payout == address(0)) revert RewardsUnknownNode(node);
        mapping(uint256 => NodeRecord) storage records = _nodeEpochs[node];
        for (uint256 i; i < count; ++i) {
            uint256 epoch = epochs[i];
            NodeRecord storage record = records[epoch];
            if (record.claimed) revert RewardsAlreadyClaimed(node, epoch);
            record.claimed = true;
            uint256 reward = _finalizedReward(record.weight, _epochs[epoch]);
            amount += reward;
            emit RewardClaimed(node, epoch, payout, reward);
        }
        if (amount == 0) revert RewardsNothingToClaim(node);
        _totalClaimed += amount.toUint184();
        _rewardToken.mint(payout, amount);
    }

    /// @inheritdoc IRewardPool
    function setEmissionPerEpoch(uint256 emissionPerEpoch_) external onlyRole(PARAMETER_ROLE) {
        _checkEmission(emissionPerEpoch_);
        _freezeCurrent();
        uint256 oldValue = _params.emissionPerEpoch;
        _params.emissionPerEpoch = uint128(emissionPerEpoch_);
        emit ParameterUpdated("emissionPerEpoch", oldValue, emissionPerEpoch_);
    }

    /// @inheritdoc IRewardPool
    function setRewardPerFeeUnit(uint256 rewardPerFeeUnit_) external onlyRole(PARAMETER_ROLE) {
        _checkRewardPerFeeUnit(rewardPerFeeUnit_);
        _freezeCurrent();
        uint256 oldValue = _params.rewardPerFeeUnit;
        _params.rewardPerFeeUnit = uint80(rewardPerFeeUnit_);
        emit ParameterUpdated("rewardPerFeeUnit", oldValue, rewardPerFeeUnit_);
    }

    /// @inheritdoc IRewardPool
    function setMaxNodeShareBps(uint16 maxNodeShareBps_) external onlyRole(PARAMETER_ROLE) {
        _checkMaxNodeShare(maxNodeShareBps_);
        _freezeCurrent();
        uint256 oldValue = _params.maxNodeShareBps;
        _params.maxNodeShareBps = maxNodeShareBps_;
        emit ParameterUpdated("maxNodeShareBps", oldValue, maxNodeShareBps_);
    }

    /// @inheritdoc IRewardPool
    function setLatencyCurve(uint32 lowMs, uint32 highMs, uint16 floorBps) external onlyRole(PARAMETER_ROLE) {
        _checkCurve(lowMs, highMs, floorBps);
        Curve memory old = _curve;
        _curve = Curve(lowMs, highMs, floorBps, old.settlement);
        emit ParameterUpdated("latencyLowMs", old.lowMs, lowMs);
        emit ParameterUpdated("latencyHighMs", old.highMs, highMs);
        emit ParameterUpdated("latencyFloorBps", old.floorBps, floorBps);
    }

    /// @inheritdoc IRewardPool
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc IRewardPool
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @inheritdoc IRewardPool
    function claimable(address node, uint256 epoch) external view returns (uint256) {
        if (epoch >= currentEpoch()) return 0;
        NodeRecord memory record = _nodeEpochs[node][epoch];
        if (record.claimed || record.weight == 0) return 0;
        Epoch storage ep = _epochs[epoch];
        if (epoch < _finalizedThrough) return _finalizedReward(record.weight, ep);
        (, uint256 paid,) = _preview(epoch);
        if (paid == 0) return 0;
        return Math.mulDiv(_cappedOf(record.weight, ep), paid, ep.totalCapped);
    }

    /// @inheritdoc IRewardPool
    function nodeEpoch(address node, uint256 epoch)
        external
        view
        returns (uint256 fee, uint256 weight, uint256 capped, bool claimed)
    {
        NodeRecord memory record = _nodeEpochs[node][epoch];
        return (record.fee, record.weight, _cappedOf(record.weight, _epochs[epoch]), record.claimed);
    }

    /// @inheritdoc IRewardPool
    function epochInfo(uint256 epoch)
        external
        view
        returns (uint256 scheduled, uint256 totalCapped, uint256 budget, uint256 paid, uint256 carryOut, bool finalized)
    {
        Epoch storage ep = _epochs[epoch];
        totalCapped = ep.totalCapped;
        if (epoch < _finalizedThrough) {
            return (ep.scheduled, totalCapped, uint256(ep.paid) + ep.carry, ep.paid, ep.carry, true);
        }
        scheduled = ep.snapshotted ? ep.scheduled : _params.emissionPerEpoch;
    }

    /// @inheritdoc IRewardPool
    function finalizedThrough() external view returns (uint256) {
        return _finalizedThrough;
    }

    /// @inheritdoc IRewardPool
    function carry() external view returns (uint256) {
        return _carry;
    }

    /// @inheritdoc IRewardPool
    function latencyCurve() external view returns (uint32 lowMs, uint32 highMs, uint16 floorBps) {
        Curve memory curve = _curve;
        return (curve.lowMs, curve.highMs, curve.floorBps);
    }

    /// @inheritdoc IRewardPool
    function latencyMultiplierBps(uint32 latencyMs) external view returns (uint16) {
        Curve memory curve = _curve;
        return RewardMath.latencyMultiplierBps(latencyMs, curve.lowMs, curve.highMs, curve.floorBps);
    }

    /// @inheritdoc IRewardPool
    function rewardPerFeeUnit() external view returns (uint256) {
        return _params.rewardPerFeeUnit;
    }

    /// @inheritdoc IRewardPool
    function emissionPerEpoch() external view returns (uint256) {
        return _params.emissionPerEpoch;
    }

    /// @inheritdoc IRewardPool
    function maxNodeShareBps() external view returns (uint16) {
        return _params.maxNodeShareBps;
    }

    /// @inheritdoc IRewardPool
    function totalClaimed() external view returns (uint256) {
        return _totalClaimed;
    }

    /// @inheritdoc IRewardPool
    function totalEmitted() external view returns (uint256) {
        return _totalEmitted;
    }

    /// @inheritdoc IRewardPool
    function totalPaid() external view returns (uint256) {
        return uint256(_totalEmitted) - _carry;
    }

    /// @inheritdoc IRewardPool
    function rewardToken() external view returns (address) {
        return address(_rewardToken);
    }

    /// @inheritdoc IRewardPool
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IRewardPool
    function genesis() external view returns (uint256) {
        return _genesis;
    }

    /// @inheritdoc IRewardPool
    function epochLength() external view returns (uint256) {
        return _epochLength;
    }

    /// @inheritdoc IRewardPool
    function epochStart(uint256 epoch) external view returns (uint256) {
        return uint256(_genesis) + epoch * _epochLength;
    }

    /// @inheritdoc IRewardPool
    function currentEpoch() public view returns (uint256) {
        return (block.timestamp - _genesis) / _epochLength;
    }

    /// @dev Keeps `_curve.settlement` on the SETTLEMENT_ROLE holder granted last.
    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        granted = super._grantRole(role, account);
        if (granted && role == SETTLEMENT_ROLE) _curve.settlement = account;
    }

    /// @dev A revoked (or renounced) holder leaves the cache; other holders still pass `_checkSettlement`.
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == SETTLEMENT_ROLE && _curve.settlement == account) _curve.settlement = address(0);
    }

    /// @dev `onlyRole(SETTLEMENT_ROLE)` with the cached holder first; anyone else gets AccessControl's
    /// own check and error.
    function _checkSettlement() private view {
        if (msg.sender != _curve.settlement) _checkRole(SETTLEMENT_ROLE);
    }

    /// @dev Finalises epochs `_finalizedThrough .. target-1` in order (no-op if already done).
    function _finalizeThrough(uint256 target) private {
        uint256 through = _finalizedThrough;
        if (through >= target) return;
        uint256 carry_ = _carry;
        uint256 emitted = _totalEmitted;
        uint256 emission = _params.emissionPerEpoch;
        for (uint256 epoch = through; epoch < target; ++epoch) {
            Epoch storage ep = _epochs[epoch];
            // An epoch without usage was never snapshotted: its schedule is the emission in force,
            // because every setter finalises past epochs and snapshots the current one first.
            uint256 scheduled = ep.snapshotted ? ep.scheduled : emission;
            uint256 totalCapped = ep.totalCapped;
            uint256 budget = scheduled + carry_;
            uint256 paid = totalCapped < budget ? totalCapped : budget;
            carry_ = budget - paid;
            ep.scheduled = uint128(scheduled);
            ep.carry = carry_.toUint128();
            if (paid > 0) ep.paid = uint128(paid);
            emitted += scheduled;
            emit EpochFinalized(epoch, budget, totalCapped, paid, carry_);
        }
        _finalizedThrough = uint64(target);
        _carry = uint128(carry_);
        _totalEmitted = emitted.toUint128();
    }

    /// @dev `_finalizeThrough` for calls that finalise as a side effect: a backlog longer than
    /// MAX_FINALIZE_PER_CALL reverts instead of running out of gas, so it is worked off in chunks by
    /// `finalizeEpochs` (which anyone may call) and the call then succeeds.
    function _finalizeThroughBounded(uint256 target) private {
        uint256 through = _finalizedThrough;
        if (target > through && target - through > MAX_FINALIZE_PER_CALL) {
            revert RewardsTooManyPendingEpochs(target - through, MAX_FINALIZE_PER_CALL);
        }
        _finalizeThrough(target);
    }

    /// @dev Fixes the current epoch's schedule and rates before a parameter changes, so the change
    /// applies from the next epoch and never retroactively.
    function _freezeCurrent() private {
        uint256 epoch = currentEpoch();
        _finalizeThroughBounded(epoch);
        Epoch storage ep = _epochs[epoch];
        if (!ep.snapshotted) _snapshot(ep);
    }

    function _snapshot(Epoch storage ep) private {
        Params memory params = _params;
        ep.scheduled = params.emissionPerEpoch;
        ep.cap = uint128(RewardMath.bps(params.emissionPerEpoch, params.maxNodeShareBps));
        ep.rewardPerFeeUnit = params.rewardPerFeeUnit;
        ep.snapshotted = true;
    }

    /// @dev Simulates finalisation up to `epoch` (not yet finalised): its budget, paid and carry.
    function _preview(uint256 epoch) private view returns (uint256 budget, uint256 paid, uint256 carry_) {
        carry_ = _carry;
        uint256 emission = _params.emissionPerEpoch;
        for (uint256 e = _finalizedThrough; e <= epoch; ++e) {
            Epoch storage ep = _epochs[e];
            uint256 scheduled = ep.snapshotted ? ep.scheduled : emission;
            uint256 totalCapped = ep.totalCapped;
            budget = scheduled + carry_;
            paid = totalCapped < budget ? totalCapped : budget;
            carry_ = budget - paid;
        }
    }

    function _finalizedReward(uint256 weight, Epoch storage ep) private view returns (uint256) {
        if (weight == 0) return 0;
        uint256 paid = ep.paid;
        if (paid == 0) return 0;
        // r = capped × paid / Σ capped, floored: Σ r ≤ paid, dust ≤ 1 wei per node.
        return Math.mulDiv(_cappedOf(weight, ep), paid, ep.totalCapped);
    }

    function _cappedOf(uint256 weight, Epoch storage ep) private view returns (uint256) {
        if (weight == 0) return 0;
        return RewardMath.capped(weight, ep.rewardPerFeeUnit, ep.cap);
    }

    function _checkEmission(uint256 value) private pure {
        if (value > MAX_EMISSION_PER_EPOCH) {
            revert RewardsParameterOutOfBounds("emissionPerEpoch", value, 0, MAX_EMISSION_PER_EPOCH);
        }
    }

    function _checkRewardPerFeeUnit(uint256 value) private pure {
        if (value == 0 || value > MAX_REWARD_PER_FEE_UNIT) {
            revert RewardsParameterOutOfBounds("rewardPerFeeUnit", value, 1, MAX_REWARD_PER_FEE_UNIT);
        }
    }

    function _checkMaxNodeShare(uint16 value) private pure {
        if (value == 0 || value > RewardMath.BPS) {
            revert RewardsParameterOutOfBounds("maxNodeShareBps", value, 1, RewardMath.BPS);
        }
    }

    function _checkCurve(uint32 lowMs, uint32 highMs, uint16 floorBps) private pure {
        if (lowMs >= highMs || highMs > MAX_LATENCY_MS || floorBps > RewardMath.BPS) {
            revert RewardsInvalidLatencyCurve(lowMs, highMs, floorBps);
        }
    }
}
