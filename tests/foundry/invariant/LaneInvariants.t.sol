// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {StdInvariant} from "forge-std/StdInvariant.sol";

import {LaneSettlement} from "contracts/LaneSettlement.sol";
import {ILaneSettlement} from "contracts/interfaces/ILaneSettlement.sol";
import {KuotaSystem} from "../utils/KuotaSystem.sol";
import {LaneHandler} from "./LaneHandler.sol";

/// @notice Lane invariants after every action of random LaneHandler sequences (the Brownie model is
/// tests/lanes/test_lanes_stateful.py): the escrow's custody, the lane funds, and each lane's books.
contract LaneInvariantsTest is StdInvariant, KuotaSystem {
    uint64 internal constant CLOSE_DELAY = 600;

    LaneSettlement internal lanes;
    LaneHandler internal handler;

    function setUp() public {
        _deploySystem();
        vm.startPrank(deployer);
        lanes = new LaneSettlement(deployer, address(escrow), address(registry), address(rewards), FEE_BPS, CLOSE_DELAY);
        escrow.grantRole(escrow.LANES_ROLE(), address(lanes));
        rewards.grantRole(rewards.SETTLEMENT_ROLE(), address(lanes));
        vm.stopPrank();
        address operator = makeAddr("operator");
        _stake(operator, 2 * MIN_STAKE_PER_NODE);
        address[2] memory nodes =
            [_register(operator, 0xA11CE, makeAddr("payout A")), _register(operator, 0xB0B, makeAddr("payout B"))];
        handler = new LaneHandler(usd, escrow, lanes, nodes);

        bytes4[] memory selectors = new bytes4[](7);
        selectors[0] = LaneHandler.deposit.selector;
        selectors[1] = LaneHandler.allocate.selector;
        selectors[2] = LaneHandler.settle.selector;
        selectors[3] = LaneHandler.forged.selector;
        selectors[4] = LaneHandler.requestClose.selector;
        selectors[5] = LaneHandler.finishClose.selector;
        selectors[6] = LaneHandler.advanceTime.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// The escrow holds exactly the consumers' funds, the lane funds, the node credits and the fees,
    /// and the lane funds are exactly the lanes' balances.
    function invariant_escrowCustody() public view {
        uint256 held = escrow.accruedFees() + escrow.laneFundsOf(address(lanes));
        uint256 lanesTotal;
        for (uint256 c; c < handler.CONSUMERS(); ++c) {
            (uint256 available, uint256 thawing,) = escrow.accountOf(handler.consumers(c));
            held += available + thawing;
            for (uint256 n; n < handler.NODES(); ++n) {
                (ILaneSettlement.Lane memory lane,) = lanes.laneOf(handler.consumers(c), handler.nodes(n));
                lanesTotal += lane.balance;
            }
        }
        for (uint256 n; n < handler.NODES(); ++n) {
            held += escrow.creditOf(handler.nodes(n));
        }
        assertEq(usd.balanceOf(address(escrow)), held, "escrow balance != what it owes");
        assertEq(usd.balanceOf(address(escrow)), handler.ghostDeposited(), "escrow balance != deposits");
        assertEq(escrow.laneFundsOf(address(lanes)), lanesTotal, "lane funds != sum of lane balances");
    }

    /// Every lane's balance plus what it settled is what was allocated to it less what closes returned;
    /// what lanes settled is what settlements paid, and the nodes and the treasury got all of it.
    function invariant_laneBooks() public view {
        uint256 settledTotal;
        uint256 lanesTotal;
        for (uint256 c; c < handler.CONSUMERS(); ++c) {
            for (uint256 n; n < handler.NODES(); ++n) {
                (ILaneSettlement.Lane memory lane,) = lanes.laneOf(handler.consumers(c), handler.nodes(n));
                settledTotal += lane.settledAmount;
                lanesTotal += lane.balance + lane.settledAmount;
            }
        }
        assertEq(lanesTotal, handler.ghostAllocated() - handler.ghostReturned(), "lane books");
        assertEq(settledTotal, handler.ghostPaid(), "settled != paid");
        uint256 credited = escrow.accruedFees() + escrow.creditOf(handler.nodes(0)) + escrow.creditOf(handler.nodes(1));
        assertEq(credited, handler.ghostPaid(), "credits + fees != paid");
    }
}
