// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IReceiptSettlement} from "contracts/interfaces/IReceiptSettlement.sol";

import {KuotaSystem, ReceiptKit} from "../utils/KuotaSystem.sol";

/// @notice One test per main call, each doing that call alone on a warm system: `forge snapshot`
/// records their gas in .gas-snapshot and `forge snapshot --check` (make fuzz) fails on a regression.
/// Receipts are signed in setUp, so the figures hold the contract call and as little test code as can be.
contract GasTest is KuotaSystem {
    uint256 private constant BATCH = 10;
    uint256 private constant CONSUMER_KEY = 0xC0FFEE;

    address private _operator = makeAddr("operator");
    address private _consumer;
    address private _node;
    IReceiptSettlement.Receipt private _single;
    bytes private _singleSig;
    IReceiptSettlement.Receipt[] private _batch;
    bytes[] private _batchSigs;
    bytes private _packed;
    uint256[] private _epochs;

    function setUp() public {
        _deploySystem();
        _stake(_operator, 2 * MIN_STAKE_PER_NODE);
        _node = _register(_operator, 0xA11CE, makeAddr("payout"));
        _consumer = vm.addr(CONSUMER_KEY);
        _fund(_consumer, 1e12);
        // A first settlement warms the channel, the node's credit and the epoch's usage record, as
        // on a running network where these slots already hold value.
        _settleWarm();
        _single = _receipt(2_000_000, 40);
        _singleSig = ReceiptKit.sign(vm, settlement, CONSUMER_KEY, _single);
        for (uint256 i; i < BATCH; ++i) {
            IReceiptSettlement.Receipt memory r = _receipt(2_000_000 + (i + 1) * 1_000, uint32(40 + i * 50));
            bytes memory sig = ReceiptKit.sign(vm, settlement, CONSUMER_KEY, r);
            _batch.push(r);
            _batchSigs.push(sig);
            _packed = bytes.concat(_packed, ReceiptKit.pack(r, sig));
        }
        _epochs.push(0);
        vm.prank(deployer);
        kuota.transfer(_operator, 100e18);
        vm.prank(_operator);
        kuota.approve(address(staking), type(uint256).max);
        usd.mint(_consumer, 1e6);
        vm.prank(_consumer);
        usd.approve(address(escrow), type(uint256).max);
    }

    function test_gas_deposit() public {
        vm.prank(_consumer);
        escrow.deposit(1e6);
        assertEq(usd.balanceOf(_consumer), 0);
    }

    function test_gas_requestThaw() public {
        vm.prank(_consumer);
        escrow.requestThaw(1e6);
        assertEq(escrow.thawingOf(_consumer), 1e6);
    }

    function test_gas_settle() public {
        assertEq(settlement.settle(_single, _singleSig), 1_000_000);
    }

    function test_gas_settleMany10() public {
        assertEq(settlement.settleMany(_batch, _batchSigs, bytes32(0)), 1_010_000);
    }

    function test_gas_settleManyPacked10() public {
        assertEq(settlement.settleManyPacked(_node, _packed, bytes32(0)), 1_010_000);
    }

    function test_gas_withdrawEarnings() public {
        assertEq(escrow.withdrawEarnings(_node), 950_000);
    }

    function test_gas_claim() public {
        vm.warp(block.timestamp + EPOCH_LENGTH);
        assertGt(rewards.claim(_node, _epochs), 0);
    }

    function test_gas_stake() public {
        vm.prank(_operator);
        staking.stake(100e18);
        assertEq(staking.bondedOf(_operator), 2 * MIN_STAKE_PER_NODE + 100e18);
    }

    function test_gas_requestUnbond() public {
        vm.prank(_operator);
        staking.requestUnbond(MIN_STAKE_PER_NODE);
        assertEq(staking.totalUnbonding(), MIN_STAKE_PER_NODE);
    }

    function test_gas_slash() public {
        vm.prank(slasher);
        staking.slash(_operator, MIN_STAKE_PER_NODE, makeAddr("reporter"));
        assertEq(staking.bondedOf(_operator), MIN_STAKE_PER_NODE);
    }

    function test_gas_register() public {
        address node = _register(_operator, 0xB0B, makeAddr("payout2"));
        assertEq(registry.operatorOf(node), _operator);
    }

    function _receipt(uint256 amount, uint32 latencyMs) private view returns (IReceiptSettlement.Receipt memory) {
        return IReceiptSettlement.Receipt({
            consumer: _consumer,
            node: _node,
            sessionId: keccak256("gas session"),
            cumulativeBytes: amount * 1_024,
            cumulativeAmount: amount,
            latencyMs: latencyMs,
            issuedAt: uint64(block.timestamp)
        });
    }

    function _settleWarm() private {
        IReceiptSettlement.Receipt memory r = _receipt(1_000_000, 40);
        settlement.settle(r, ReceiptKit.sign(vm, settlement, CONSUMER_KEY, r));
    }
}
