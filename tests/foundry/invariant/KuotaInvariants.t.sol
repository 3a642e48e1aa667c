// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {StdInvariant} from "forge-std/StdInvariant.sol";

import {KuotaSystem} from "../utils/KuotaSystem.sol";
import {Deployment, KuotaHandler} from "./KuotaHandler.sol";

/// @notice System invariants of escrow, settlement, rewards and stake, after every action of random
/// sequences of KuotaHandler actions (the model is tests/stateful/test_system_invariants.py, the
/// Brownie state machine, at Foundry's scale: see docs/FUZZING.md for the runs and depth).
contract KuotaInvariantsTest is StdInvariant, KuotaSystem {
    KuotaHandler internal handler;

    function setUp() public {
        _deploySystem();
        handler = new KuotaHandler(
            Deployment(usd, kuota, staking, registry, escrow, rewards, settlement, deployer, slasher, makeAddr("reporter")),
            MIN_STAKE_PER_NODE
        );
        handler.bootstrap();

        // Only the actions: the handler's views and bootstrap are not called by the fuzzer.
        bytes4[] memory selectors = new bytes4[](19);
        selectors[0] = KuotaHandler.deposit.selector;
        selectors[1] = KuotaHandler.requestThaw.selector;
        selectors[2] = KuotaHandler.cancelThaw.selector;
        selectors[3] = KuotaHandler.withdraw.selector;
        selectors[4] = KuotaHandler.withdrawEarnings.selector;
        selectors[5] = KuotaHandler.sweepFees.selector;
        selectors[6] = KuotaHandler.settle.selector;
        selectors[7] = KuotaHandler.replay.selector;
        selectors[8] = KuotaHandler.forged.selector;
        selectors[9] = KuotaHandler.settleBatch.selector;
        selectors[10] = KuotaHandler.advanceTime.selector;
        selectors[11] = KuotaHandler.finalizeEpochs.selector;
        selectors[12] = KuotaHandler.claim.selector;
        selectors[13] = KuotaHandler.stake.selector;
        selectors[14] = KuotaHandler.requestUnbond.selector;
        selectors[15] = KuotaHandler.withdrawStake.selector;
        selectors[16] = KuotaHandler.slash.selector;
        selectors[17] = KuotaHandler.registerNode.selector;
        selectors[18] = KuotaHandler.toggleJail.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @dev Invariants read views that depend on the clock; the handler's clock is the one in force.
    modifier atHandlerTime() {
        vm.warp(handler.ghostTime());
        _;
    }

    /// Escrow holds exactly what consumers, nodes and the treasury are owed, and that equals every
    /// deposit less every withdrawal, payout and sweep. Settlements moved exactly the channels' total.
    function invariant_escrowConservation() public view {
        uint256 owed = escrow.accruedFees();
        for (uint256 c; c < handler.CONSUMERS(); ++c) {
            (uint256 available, uint256 thawing,) = escrow.accountOf(handler.consumers(c));
            owed += available + thawing;
        }
        uint256 nodeCount = handler.nodeCount();
        uint256 credits;
        uint256 channelTotal;
        for (uint256 i; i < nodeCount; ++i) {
            address node = handler.nodes(i);
            credits += escrow.creditOf(node);
            for (uint256 c; c < handler.CONSUMERS(); ++c) {
                (uint256 settledAmount,) = settlement.channelOf(handler.consumers(c), node);
                channelTotal += settledAmount;
            }
        }
        uint256 balance = usd.balanceOf(address(escrow));
        assertEq(balance, owed + credits, "escrow balance != balances + credits + fees");
        assertEq(
            balance,
            handler.ghostDeposited() - handler.ghostConsumerWithdrawn() - handler.ghostEarningsWithdrawn()
                - handler.ghostFeesSwept(),
            "escrow balance != deposits - withdrawals - payouts - sweeps"
        );
        assertEq(channelTotal, handler.ghostSettledPaid(), "channels' settled total != paid by settlements");
        assertEq(
            channelTotal,
            credits + escrow.accruedFees() + handler.ghostEarningsWithdrawn() + handler.ghostFeesSwept(),
            "settled total != node credits + fees (held or paid out)"
        );
    }

    /// KUOTA is minted only by claims; claims never exceed what finalised epochs paid, which never
    /// exceeds the emission schedule; each finalised epoch's claims (made or pending) sum to its
    /// payment less at most 1 wei of rounding dust per node, and no node gets more than its capped share.
    function invariant_rewardConservation() public atHandlerTime {
        uint256 claimed = rewards.totalClaimed();
        assertEq(claimed, handler.ghostTotalClaimed(), "totalClaimed != sum of claims");
        assertEq(
            kuota.totalSupply(), TOKEN_INITIAL_SUPPLY + claimed - handler.ghostBurned(), "KUOTA supply != initial + claims - burns"
        );
        uint256 finalized = rewards.finalizedThrough();
        assertEq(rewards.totalEmitted(), EMISSION_PER_EPOCH * finalized, "emitted != schedule of finalised epochs");
        assertLe(finalized, rewards.currentEpoch(), "finalised an unfinished epoch");
        assertLe(claimed, rewards.totalPaid(), "claimed more than paid");
        assertLe(rewards.totalPaid(), rewards.totalEmitted(), "paid more than emitted");

        uint256 paidTotal;
        uint256 epochs = handler.usageEpochCount();
        for (uint256 k; k < epochs; ++k) {
            uint256 epoch = handler.usageEpochs(k);
            if (epoch >= finalized) continue;
            (,,, uint256 paid,, bool isFinal) = rewards.epochInfo(epoch);
            assertTrue(isFinal, "epoch below finalizedThrough not final");
            paidTotal += paid;
            _checkEpochShares(epoch, paid);
        }
        assertEq(paidTotal, rewards.totalPaid(), "sum of epoch payments != totalPaid");
    }

    function _checkEpochShares(uint256 epoch, uint256 paid) private view {
        uint256 sum;
        uint256 earners;
        uint256 nodeCount = handler.nodeCount();
        for (uint256 i; i < nodeCount; ++i) {
            address node = handler.nodes(i);
            (, uint256 weight, uint256 capped,) = rewards.nodeEpoch(node, epoch);
            uint256 reward = handler.ghostClaimed(node, epoch) + rewards.claimable(node, epoch);
            assertLe(reward, capped, "reward above the node's capped share");
            if (weight > 0) ++earners;
            sum += reward;
        }
        assertLe(sum, paid, "epoch rewards exceed its payment");
        assertLe(paid - sum, earners, "more than 1 wei of dust per node");
    }

    /// A channel's settled amount never decreases, equals what the settlement rules predict (each
    /// fresh receipt pays the owed difference capped by the consumer's funds; stale ones pay nothing),
    /// and never exceeds the highest cumulative amount the consumer signed.
    function invariant_channelMonotonicity() public view {
        assertFalse(handler.channelDecreased(), "a channel's settled amount decreased");
        uint256 nodeCount = handler.nodeCount();
        for (uint256 c; c < handler.CONSUMERS(); ++c) {
            address consumer = handler.consumers(c);
            for (uint256 i; i < nodeCount; ++i) {
                address node = handler.nodes(i);
                (uint256 settledAmount, uint256 settledBytes) = settlement.channelOf(consumer, node);
                assertEq(settledAmount, handler.modelSettled(c, node), "settled != model");
                assertLe(settledAmount, handler.signedAmount(c, node), "settled above the signed amount");
                assertLe(settledBytes, handler.signedBytes(c, node), "settled bytes above the signed bytes");
            }
        }
    }

    /// Staking holds exactly the bonded and unbonding stake, per operator and in total, and that
    /// equals everything staked less withdrawals and slashes.
    function invariant_stakeAccounting() public view {
        uint256 bonded;
        uint256 unbonding;
        for (uint256 o; o < handler.OPERATORS(); ++o) {
            address operator = handler.operators(o);
            bonded += staking.bondedOf(operator);
            (uint256 amount,) = staking.unbondingOf(operator);
            unbonding += amount;
        }
        assertEq(staking.totalBonded(), bonded, "totalBonded != sum of bonded");
        assertEq(staking.totalUnbonding(), unbonding, "totalUnbonding != sum of unbonding");
        uint256 balance = kuota.balanceOf(address(staking));
        assertEq(balance, bonded + unbonding, "staking balance != bonded + unbonding");
        assertEq(
            balance,
            handler.ghostStaked() - handler.ghostStakeWithdrawn() - handler.ghostSlashed(),
            "staking balance != staked - withdrawn - slashed"
        );
    }
}
