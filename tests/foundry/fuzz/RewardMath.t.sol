// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Test} from "forge-std/Test.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {RewardMath} from "contracts/libraries/RewardMath.sol";

/// @notice Stateless properties of RewardMath over the ranges its callers can reach, each checked
/// against a reference computed another way (exact rational bounds, OpenZeppelin's mulDiv).
contract RewardMathFuzzTest is Test {
    uint256 private constant BPS = 10_000;
    /// RewardPool.MAX_LATENCY_MS: setLatencyCurve rejects a higher `highMs`.
    uint32 private constant MAX_LATENCY_MS = 60_000;
    /// RewardPool.MAX_REWARD_PER_FEE_UNIT.
    uint256 private constant MAX_RATE = 1e24;

    function _curve(uint32 lowMs, uint32 highMs, uint16 floorBps) private pure returns (uint32, uint32, uint16) {
        // The curves RewardPool accepts: lowMs < highMs <= MAX_LATENCY_MS, floorBps <= BPS.
        highMs = uint32(bound(highMs, 1, MAX_LATENCY_MS));
        lowMs = uint32(bound(lowMs, 0, highMs - 1));
        floorBps = uint16(bound(floorBps, 0, BPS));
        return (lowMs, highMs, floorBps);
    }

    /// The multiplier stays within [floorBps, 10000] and is the exact linear value rounded up
    /// (the drop is rounded down): (m - 1)·span < 10000·span - (10000 - floor)·(latency - low) <= m·span.
    function testFuzz_latencyMultiplierIsTheLinearValueRoundedUp(
        uint32 latencyMs,
        uint32 lowMs,
        uint32 highMs,
        uint16 floorBps
    ) public pure {
        (lowMs, highMs, floorBps) = _curve(lowMs, highMs, floorBps);
        uint256 m = RewardMath.latencyMultiplierBps(latencyMs, lowMs, highMs, floorBps);
        assertGe(m, floorBps, "below the floor");
        assertLe(m, BPS, "above 100 %");
        if (latencyMs <= lowMs) {
            assertEq(m, BPS, "fast receipts keep the full weight");
        } else if (latencyMs >= highMs) {
            assertEq(m, floorBps, "slow receipts get the floor");
        } else {
            uint256 span = uint256(highMs) - lowMs;
            uint256 exactScaled = BPS * span - (BPS - floorBps) * (uint256(latencyMs) - lowMs);
            assertLe(exactScaled, m * span, "rounded below the exact value");
            assertLt((m - 1) * span, exactScaled, "more than one bps above the exact value");
        }
    }

    /// A slower receipt never gets a higher multiplier.
    function testFuzz_latencyMultiplierIsNonIncreasing(
        uint32 fasterMs,
        uint32 slowerMs,
        uint32 lowMs,
        uint32 highMs,
        uint16 floorBps
    ) public pure {
        (lowMs, highMs, floorBps) = _curve(lowMs, highMs, floorBps);
        if (fasterMs > slowerMs) (fasterMs, slowerMs) = (slowerMs, fasterMs);
        assertGe(
            RewardMath.latencyMultiplierBps(fasterMs, lowMs, highMs, floorBps),
            RewardMath.latencyMultiplierBps(slowerMs, lowMs, highMs, floorBps)
        );
    }

    /// weight = floor(fee · m / 10000): never above the fee, equal to mulDiv, monotonic in both inputs.
    /// Fees come from settled amounts below 2^128, so the product cannot overflow.
    function testFuzz_weightRoundsDownAndNeverExceedsFee(uint256 fee, uint256 moreFee, uint16 m, uint16 moreM)
        public
        pure
    {
        fee = bound(fee, 0, type(uint128).max);
        moreFee = bound(moreFee, fee, type(uint128).max);
        m = uint16(bound(m, 0, BPS));
        moreM = uint16(bound(moreM, m, BPS));
        uint256 w = RewardMath.weight(fee, m);
        assertEq(w, Math.mulDiv(fee, m, BPS), "not floor(fee * m / 10000)");
        assertLe(w, fee, "weight above the fee");
        assertLe(w * BPS, fee * m, "rounded up");
        assertGt((w + 1) * BPS, fee * m, "rounded down by more than one unit");
        assertLe(w, RewardMath.weight(moreFee, m), "not monotonic in the fee");
        assertLe(w, RewardMath.weight(fee, moreM), "not monotonic in the multiplier");
    }

    /// bps() is floor(amount · bps / 10000) for any amount whose product fits 256 bits, and a share
    /// of at most 100 % never exceeds the amount.
    function testFuzz_bpsMatchesMulDivRoundedDown(uint256 amount, uint256 bpsValue) public pure {
        bpsValue = bound(bpsValue, 0, BPS);
        amount = bound(amount, 0, bpsValue == 0 ? type(uint256).max : type(uint256).max / bpsValue);
        uint256 share = RewardMath.bps(amount, bpsValue);
        assertEq(share, Math.mulDiv(amount, bpsValue, BPS));
        assertLe(share, amount);
    }

    /// bps() reverts (checked arithmetic) rather than wrap when the product overflows.
    function testFuzz_bpsRevertsOnOverflow(uint256 amount, uint256 bpsValue) public {
        bpsValue = bound(bpsValue, 2, type(uint256).max);
        amount = bound(amount, type(uint256).max / bpsValue + 1, type(uint256).max);
        vm.expectRevert();
        this.bpsExternal(amount, bpsValue);
    }

    function bpsExternal(uint256 amount, uint256 bpsValue) external pure returns (uint256) {
        return RewardMath.bps(amount, bpsValue);
    }

    /// capped = min(weight · rate, cap), monotonic in the weight (RewardPool.recordUsage subtracts two
    /// caps and relies on the difference never being negative). Weights are uint120 in RewardPool and
    /// rates at most 1e24, so the product stays below 2^200.
    function testFuzz_cappedIsMinOfRawAndCapAndMonotonic(uint256 w, uint256 more, uint256 rate, uint256 cap)
        public
        pure
    {
        w = bound(w, 0, type(uint120).max);
        more = bound(more, w, type(uint120).max);
        rate = bound(rate, 1, MAX_RATE);
        cap = bound(cap, 0, type(uint128).max);
        uint256 c = RewardMath.capped(w, rate, cap);
        assertEq(c, Math.min(w * rate, cap));
        assertLe(c, cap, "above the cap");
        assertLe(c, RewardMath.capped(more, rate, cap), "not monotonic in the weight");
    }

    /// The whole chain a settlement runs (fee -> latency-weighted weight -> capped reward) never pays a
    /// node more than rewardPerFeeUnit per unit of fee (RewardMath's stated guarantee).
    function testFuzz_rewardNeverExceedsRatePerFeeUnit(
        uint256 fee,
        uint32 latencyMs,
        uint32 lowMs,
        uint32 highMs,
        uint16 floorBps,
        uint256 rate,
        uint256 cap
    ) public pure {
        (lowMs, highMs, floorBps) = _curve(lowMs, highMs, floorBps);
        fee = bound(fee, 0, type(uint120).max);
        rate = bound(rate, 1, MAX_RATE);
        cap = bound(cap, 0, type(uint128).max);
        uint16 m = RewardMath.latencyMultiplierBps(latencyMs, lowMs, highMs, floorBps);
        uint256 reward = RewardMath.capped(RewardMath.weight(fee, m), rate, cap);
        assertLe(reward, fee * rate);
    }
}
