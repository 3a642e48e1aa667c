// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IRewardPool
/// @notice KuotaToken rewards per fixed-length epoch, earned by protocol fees (Helium's data-credit model).
///
/// A node's raw reward in epoch e is `weight × rewardPerFeeUnit`, where weight is the protocol fee its
/// settlements paid in e times a latency multiplier ≤ 1 (so weight ≤ fee). It is capped at
/// `cap_e = scheduled_e × maxNodeShareBps / 10000`, and every node is scaled down pro rata when the
/// epoch's Σ capped exceeds its budget (`scheduled_e` + carry). Whatever is not paid carries over.
/// Hence `reward ≤ rewardPerFeeUnit × fee`: a wash trader earns at most the fees it burns, valued at the
/// reference price `1 / rewardPerFeeUnit`.
///
/// Epoch e covers `[genesis + e·epochLength, genesis + (e+1)·epochLength)`. Parameters that shape
/// rewards (`emissionPerEpoch`, `rewardPerFeeUnit`, `maxNodeShareBps`) are snapshotted per epoch at its
/// first usage record; a change applies from the next epoch.
interface IRewardPool {
    error RewardsWeightExceedsFee(uint256 weight, uint256 fee);
    error RewardsEpochNotFinished(uint256 epoch, uint256 currentEpoch);
    error RewardsAlreadyClaimed(address node, uint256 epoch);
    error RewardsNothingToClaim(address node);
    error RewardsUnknownNode(address node);
    error RewardsZeroAddress(string field);
    /// @notice Parameter `name` set to `value`, outside [`min`, `max`].
    error RewardsParameterOutOfBounds(string name, uint256 value, uint256 min, uint256 max);
    /// @notice The latency curve needs `lowMs < highMs <= 60000` and `floorBps <= 10000`.
    error RewardsInvalidLatencyCurve(uint32 lowMs, uint32 highMs, uint16 floorBps);
    /// @notice `claim` or a parameter setter would finalise `pending` epochs, more than `maxPerCall`
    /// (bounded so one call always fits in a block): call `finalizeEpochs(maxPerCall)` first, as often as needed.
    error RewardsTooManyPendingEpochs(uint256 pending, uint256 maxPerCall);

    event UsageRecorded(address indexed node, uint256 indexed epoch, uint256 fee, uint256 weight);
    event EpochFinalized(uint256 indexed epoch, uint256 budget, uint256 totalCapped, uint256 paid, uint256 carry);
    event RewardClaimed(address indexed node, uint256 indexed epoch, address indexed payout, uint256 amount);
    event ParameterUpdated(string name, uint256 oldValue, uint256 newValue);

    /// @notice SETTLEMENT_ROLE: records `fee` (payment-token base units) and `weight` (≤ fee) for `node`
    /// in the current epoch.
    function recordUsage(address node, uint256 fee, uint256 weight) external;

    /// @notice Finalises up to `maxCount` finished epochs in order; returns how many it finalised.
    function finalizeEpochs(uint256 maxCount) external returns (uint256 count);

    /// @notice Claims `node`'s rewards for `epochs` (all finished), minted to its payout address.
    /// Anyone may call. Finalises the epochs up to the largest one first: at most
    /// `MAX_FINALIZE_PER_CALL` of them, else `RewardsTooManyPendingEpochs` (call `finalizeEpochs` first).
    function claim(address node, uint256[] calldata epochs) external returns (uint256 amount);

    /// @notice PARAMETER_ROLE: reward-token emission per epoch (≤ 1e30); from the next epoch on.
    function setEmissionPerEpoch(uint256 newEmissionPerEpoch) external;

    /// @notice PARAMETER_ROLE: reward wei per payment-token base unit of fee (1 to 1e24); from the next epoch on.
    function setRewardPerFeeUnit(uint256 newRewardPerFeeUnit) external;

    /// @notice PARAMETER_ROLE: a node's maximum share of an epoch's schedule (1 to 10000 bps); from the next epoch on.
    function setMaxNodeShareBps(uint16 newMaxNodeShareBps) external;

    /// @notice PARAMETER_ROLE: the latency curve; applies to settlements from now on.
    function setLatencyCurve(uint32 lowMs, uint32 highMs, uint16 floorBps) external;

    /// @notice PAUSER_ROLE: pauses claims.
    function pause() external;

    /// @notice PAUSER_ROLE: resumes claims.
    function unpause() external;

    /// @notice `(block.timestamp − genesis) / epochLength`.
    function currentEpoch() external view returns (uint256);
    /// @notice Start of epoch 0 (the pool's deployment time).
    function genesis() external view returns (uint256);
    /// @notice Seconds per epoch (immutable).
    function epochLength() external view returns (uint256);
    /// @notice `genesis + epoch × epochLength`.
    function epochStart(uint256 epoch) external view returns (uint256);

    /// @notice What `claim(node, [epoch])` would pay now (0 for unfinished, claimed or empty epochs).
    function claimable(address node, uint256 epoch) external view returns (uint256);

    /// @notice `node`'s record in `epoch`; `capped = min(weight × rewardPerFeeUnit_e, cap_e)`.
    function nodeEpoch(address node, uint256 epoch)
        external
        view
        returns (uint256 fee, uint256 weight, uint256 capped, bool claimed);

    /// @notice The epoch's figures; budget, paid and carry are 0 until it is finalised.
    function epochInfo(uint256 epoch)
        external
        view
        returns (
            uint256 scheduled,
            uint256 totalCapped,
            uint256 budget,
            uint256 paid,
            uint256 carryOut,
            bool finalized
        );

    /// @notice Number of epochs finalised (epochs `0 .. count-1`).
    function finalizedThrough() external view returns (uint256 count);

    /// @notice Emission carried forward past the last finalised epoch.
    function carry() external view returns (uint256);

    /// @notice The latency multiplier curve: 10000 bps at or below `lowMs`, linear down to `floorBps` at `highMs`.
    function latencyCurve() external view returns (uint32 lowMs, uint32 highMs, uint16 floorBps);
    /// @notice The multiplier for `latencyMs`, in bps.
    function latencyMultiplierBps(uint32 latencyMs) external view returns (uint16);
    /// @notice Reward-token wei per payment-token base unit of fee (the reference price is its inverse).
    function rewardPerFeeUnit() external view returns (uint256);
    /// @notice Scheduled emission per epoch (for epochs not yet snapshotted).
    function emissionPerEpoch() external view returns (uint256);
    /// @notice A node's maximum share of an epoch's schedule, in bps.
    function maxNodeShareBps() external view returns (uint16);

    /// @notice Σ rewards minted by claims.
    function totalClaimed() external view returns (uint256);

    /// @notice Σ scheduled emission of finalised epochs (= totalPaid + carry).
    function totalEmitted() external view returns (uint256);

    /// @notice Σ paid of finalised epochs: what claims will mint in total, less rounding dust
    /// (≤ 1 wei per node per epoch). `totalPaid − totalClaimed − Σ claimable` is that dust.
    function totalPaid() external view returns (uint256);

    /// @notice The KuotaToken this pool mints.
    function rewardToken() external view returns (address);
    /// @notice The NodeRegistry read for payout addresses.
    function registry() external view returns (address);
}
