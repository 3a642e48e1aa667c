// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Vm} from "forge-std/Vm.sol";

import {IReceiptSettlement} from "contracts/interfaces/IReceiptSettlement.sol";

import {KuotaSystem, ReceiptKit} from "../utils/KuotaSystem.sol";

/// @notice settleManyPacked ≡ settleMany: the same receipts settled through either entry point leave
/// the same state (channels, escrow, credits, fees, reward usage), return the same total and emit the
/// same events, byte for byte, including the stale receipts a batch skips and partial payments.
contract PackedSettlementFuzzTest is KuotaSystem {
    uint256 private constant CONSUMERS = 3;
    uint256 private constant MAX_BATCH = 12;

    uint256[CONSUMERS] private _consumerKeys;
    address[CONSUMERS] private _consumers;
    address private _node;

    struct Outcome {
        uint256 paid;
        Vm.Log[] logs;
        bytes32 stateHash;
    }

    function setUp() public {
        _deploySystem();
        address operator = makeAddr("operator");
        _stake(operator, MIN_STAKE_PER_NODE);
        _node = _register(operator, 0xA11CE, makeAddr("payout"));
        for (uint256 i; i < CONSUMERS; ++i) {
            _consumerKeys[i] = 0xC0 + i;
            _consumers[i] = vm.addr(_consumerKeys[i]);
        }
        // Consumer 0 holds little: its receipts are paid in part, from available and then thawing funds.
        _fund(_consumers[0], 3_000_000);
        vm.prank(_consumers[0]);
        escrow.requestThaw(1_000_000);
        _fund(_consumers[1], 1e12);
        _fund(_consumers[2], 1e12);
        vm.warp(block.timestamp + 1);
    }

    /// `seed` draws each receipt: its consumer, whether it advances that consumer's channel (else it
    /// repeats or undercuts the last amount, and the batch skips it), the amount step and the latency.
    function testFuzz_settleManyPackedEqualsSettleMany(bytes32 seed, uint8 count) public {
        count = uint8(bound(count, 1, MAX_BATCH));
        (IReceiptSettlement.Receipt[] memory receipts, bytes[] memory signatures, bytes memory packed) =
            _batch(seed, count);

        uint256 before = vm.snapshotState();
        vm.recordLogs();
        uint256 paidMany = settlement.settleMany(receipts, signatures, seed);
        Outcome memory many = Outcome(paidMany, vm.getRecordedLogs(), _stateHash());

        vm.revertToState(before);
        vm.recordLogs();
        uint256 paidPacked = settlement.settleManyPacked(_node, packed, seed);
        Outcome memory pk = Outcome(paidPacked, vm.getRecordedLogs(), _stateHash());

        assertEq(pk.paid, many.paid, "paid");
        assertEq(pk.stateHash, many.stateHash, "state after the batch");
        assertEq(pk.logs.length, many.logs.length, "event count");
        for (uint256 i; i < many.logs.length; ++i) {
            assertEq(pk.logs[i].emitter, many.logs[i].emitter, "emitter");
            assertEq(pk.logs[i].topics, many.logs[i].topics, "topics");
            assertEq(pk.logs[i].data, many.logs[i].data, "data");
        }
        assertGt(many.logs.length, count, "every receipt emits an event, plus the batch's own");
    }

    function _batch(bytes32 seed, uint256 count)
        private
        view
        returns (IReceiptSettlement.Receipt[] memory receipts, bytes[] memory signatures, bytes memory packed)
    {
        receipts = new IReceiptSettlement.Receipt[](count);
        signatures = new bytes[](count);
        uint256[CONSUMERS] memory cumulative;
        for (uint256 i; i < count; ++i) {
            uint256 word = uint256(keccak256(abi.encode(seed, i)));
            uint256 c = word % CONSUMERS;
            bool advance = (word >> 8) % 4 != 0 || cumulative[c] == 0;
            if (advance) cumulative[c] += 1 + ((word >> 16) % 2_000_000);
            // A non-advancing receipt repeats or undercuts the consumer's last amount: stale in-batch.
            uint256 amount = advance ? cumulative[c] : cumulative[c] - ((word >> 16) % cumulative[c]);
            IReceiptSettlement.Receipt memory receipt = IReceiptSettlement.Receipt({
                consumer: _consumers[c],
                node: _node,
                sessionId: keccak256(abi.encode("session", c)),
                cumulativeBytes: amount * 1_000,
                cumulativeAmount: amount,
                latencyMs: uint32((word >> 64) % 1_000),
                issuedAt: uint64(block.timestamp)
            });
            receipts[i] = receipt;
            signatures[i] = ReceiptKit.sign(vm, settlement, _consumerKeys[c], receipt);
            packed = bytes.concat(packed, ReceiptKit.pack(receipt, signatures[i]));
        }
    }

    function _stateHash() private view returns (bytes32 h) {
        for (uint256 i; i < CONSUMERS; ++i) {
            (uint256 settledAmount, uint256 settledBytes) = settlement.channelOf(_consumers[i], _node);
            (uint256 available, uint256 thawing, uint64 thawEndsAt) = escrow.accountOf(_consumers[i]);
            h = keccak256(abi.encode(h, settledAmount, settledBytes, available, thawing, thawEndsAt));
        }
        (uint256 fee, uint256 weight, uint256 capped,) = rewards.nodeEpoch(_node, rewards.currentEpoch());
        h = keccak256(abi.encode(h, escrow.creditOf(_node), escrow.accruedFees(), fee, weight, capped));
    }
}
