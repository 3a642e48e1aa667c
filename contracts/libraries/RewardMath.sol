// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title RewardMath
/// @notice Pure arithmetic shared by ReceiptSettlement (weights) and RewardPool (caps and pro-rata shares).
/// @dev Every function rounds down, so a node's reward never exceeds `rewardPerFeeUnit × fee`.
library RewardMath {
    /// @notice One in basis points.
    uint256 internal constant BPS = 10_000;

    /// @notice Latency multiplier in basis points: 10000 at or below `lowMs`, linear down to `floorBps`
    /// at or above `highMs`.
    /// @dev Requires `lowMs < highMs` and `floorBps <= BPS` (RewardPool enforces both on every write).
    function latencyMultiplierBps(uint32 latencyMs, uint32 lowMs, uint32 highMs, uint16 floorBps)
        internal
        pure
        returns (uint16)
    {
        if (latencyMs <= lowMs) return uint16(BPS);
        if (latencyMs >= highMs) return floorBps;
        unchecked {
            // lowMs < latencyMs < highMs and floorBps <= BPS: no term underflows, the product is < 2^46.
            uint256 drop = ((BPS - floorBps) * (latencyMs - lowMs)) / (highMs - lowMs);
            return uint16(BPS - drop);
        }
    }

    /// @notice Reward weight of `fee` at multiplier `multiplierBps` (never above `fee`).
    function weight(uint256 fee, uint16 multiplierBps) internal pure returns (uint256) {
        return (fee * multiplierBps) / BPS;
    }

    /// @notice `amount × bps / 10000`, rounded down.
    function bps(uint256 amount, uint256 bpsValue) internal pure returns (uint256) {
        return (amount * bpsValue) / BPS;
    }

    /// @notice A node's capped raw reward: `min(weight × rewardPerFeeUnit, cap)`.
    function capped(uint256 nodeWeight, uint256 rewardPerFeeUnit, uint256 cap) internal pure returns (uint256) {
        uint256 raw = nodeWeight * rewardPerFeeUnit;
        return raw < cap ? raw : cap;
    }
}
