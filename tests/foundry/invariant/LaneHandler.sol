// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Test} from "forge-std/Test.sol";

import {LaneSettlement} from "contracts/LaneSettlement.sol";
import {PaymentEscrow} from "contracts/PaymentEscrow.sol";
import {ILaneSettlement} from "contracts/interfaces/ILaneSettlement.sol";
import {IReceiptSettlement} from "contracts/interfaces/IReceiptSettlement.sol";
import {MockUSD} from "contracts/test/MockUSD.sol";
import {ReceiptKit} from "../utils/KuotaSystem.sol";

/// @notice Random lane actions for LaneInvariantsTest: allocations and top-ups, batches of fresh,
/// replayed and stale receipts, forged receipts, close requests, finished closes and time. Every
/// action checks its preconditions (so `fail_on_revert` catches any unexpected revert) and keeps the
/// ghost totals the invariants compare with the chain.
contract LaneHandler is Test {
    uint256 public constant CONSUMERS = 2;
    uint256 public constant NODES = 2;

    MockUSD internal usd;
    PaymentEscrow internal escrow;
    LaneSettlement internal lanes;
    address[NODES] internal _nodes;
    uint256[CONSUMERS] internal _keys;
    address[CONSUMERS] internal _consumers;
    /// @dev The consumer's next cumulative receipt per lane (amount and bytes signed so far).
    mapping(uint256 => mapping(uint256 => uint256)) internal _signedAmount;

    uint256 public ghostTime;
    uint256 public ghostAllocated;
    uint256 public ghostReturned;
    uint256 public ghostPaid;
    uint256 public ghostDeposited;
    /// @dev The lowest settled amount a lane may show (what it showed last): it never decreases.
    mapping(uint256 => mapping(uint256 => uint256)) public ghostSettledFloor;

    constructor(MockUSD usd_, PaymentEscrow escrow_, LaneSettlement lanes_, address[NODES] memory nodes_) {
        usd = usd_;
        escrow = escrow_;
        lanes = lanes_;
        _nodes = nodes_;
        ghostTime = block.timestamp;
        for (uint256 c; c < CONSUMERS; ++c) {
            _keys[c] = uint256(keccak256(abi.encode("kuota lane handler consumer", c)));
            _consumers[c] = vm.addr(_keys[c]);
            _fund(c, 1_000e6);
        }
    }

    modifier atGhostTime() {
        vm.warp(ghostTime);
        _;
    }

    function consumers(uint256 c) external view returns (address) {
        return _consumers[c];
    }

    function nodes(uint256 n) external view returns (address) {
        return _nodes[n];
    }

    function deposit(uint256 c, uint256 amount) external atGhostTime {
        _fund(c % CONSUMERS, bound(amount, 1, 500e6));
    }

    function allocate(uint256 c, uint256 n, uint256 amount) external atGhostTime {
        c %= CONSUMERS;
        n %= NODES;
        (ILaneSettlement.Lane memory lane,) = lanes.laneOf(_consumers[c], _nodes[n]);
        uint256 available = escrow.availableOf(_consumers[c]);
        if (lane.closing || available == 0) return;
        amount = bound(amount, 1, available);
        vm.prank(_consumers[c]);
        lanes.allocate(_nodes[n], amount);
        ghostAllocated += amount;
    }

    /// @dev A batch of node `n`: receipt i is consumer i % 2's; kind 0 fresh, 1 replayed, 2 stale.
    function settle(uint256 n, uint256 step, uint8[3] calldata kinds) external atGhostTime {
        n %= NODES;
        step = bound(step, 1, 300e6);
        bytes memory packed;
        for (uint256 i; i < kinds.length; ++i) {
            uint256 c = i % CONSUMERS;
            uint256 kind = kinds[i] % 3;
            uint256 amount = _signedAmount[c][n];
            if (kind == 0 || amount == 0) {
                amount += step;
                _signedAmount[c][n] = amount;
            } else if (kind == 2) {
                amount = amount / 2 + 1;
            }
            packed = bytes.concat(packed, _packed(c, n, amount));
        }
        uint256 paid = lanes.settleLanes(_nodes[n], packed, bytes32(0));
        ghostPaid += paid;
        _recordFloors();
    }

    /// @dev The other consumer's key signs this consumer's receipt: refused with both addresses.
    function forged(uint256 c, uint256 n, uint256 amount) external atGhostTime {
        c %= CONSUMERS;
        n %= NODES;
        IReceiptSettlement.Receipt memory receipt = _receipt(c, n, bound(amount, 1, 1e12));
        bytes memory signature = _sign(_keys[(c + 1) % CONSUMERS], receipt);
        bytes memory packed = ReceiptKit.pack(receipt, signature);
        vm.expectRevert(
            abi.encodeWithSelector(ILaneSettlement.LaneInvalidSigner.selector, _consumers[c], _consumers[(c + 1) % CONSUMERS])
        );
        lanes.settleLanes(_nodes[n], packed, bytes32(0));
    }

    function requestClose(uint256 c, uint256 n) external atGhostTime {
        c %= CONSUMERS;
        n %= NODES;
        (ILaneSettlement.Lane memory lane,) = lanes.laneOf(_consumers[c], _nodes[n]);
        if (lane.closing || lane.balance == 0) return;
        vm.prank(_consumers[c]);
        lanes.requestClose(_nodes[n]);
    }

    function finishClose(uint256 c, uint256 n) external atGhostTime {
        c %= CONSUMERS;
        n %= NODES;
        (ILaneSettlement.Lane memory lane, uint64 closeAt) = lanes.laneOf(_consumers[c], _nodes[n]);
        if (!lane.closing || block.timestamp < closeAt) return;
        vm.prank(_consumers[c]);
        ghostReturned += lanes.finishClose(_nodes[n]);
    }

    function advanceTime(uint256 seconds_) external {
        ghostTime += bound(seconds_, 1, 1_200);
    }

    function _fund(uint256 c, uint256 amount) internal {
        usd.mint(_consumers[c], amount);
        vm.startPrank(_consumers[c]);
        usd.approve(address(escrow), amount);
        escrow.deposit(amount);
        vm.stopPrank();
        ghostDeposited += amount;
    }

    function _receipt(uint256 c, uint256 n, uint256 amount) internal view returns (IReceiptSettlement.Receipt memory) {
        return IReceiptSettlement.Receipt({
            consumer: _consumers[c],
            node: _nodes[n],
            sessionId: bytes32(c + 1),
            cumulativeBytes: amount / 1e3,
            cumulativeAmount: amount,
            latencyMs: uint32(amount % 900),
            issuedAt: uint64(block.timestamp)
        });
    }

    function _sign(uint256 key, IReceiptSettlement.Receipt memory receipt) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, lanes.hashReceipt(receipt));
        return abi.encodePacked(r, s, v);
    }

    function _packed(uint256 c, uint256 n, uint256 amount) internal view returns (bytes memory) {
        IReceiptSettlement.Receipt memory receipt = _receipt(c, n, amount);
        return ReceiptKit.pack(receipt, _sign(_keys[c], receipt));
    }

    function _recordFloors() internal {
        for (uint256 c; c < CONSUMERS; ++c) {
            for (uint256 n; n < NODES; ++n) {
                (uint256 settled,) = lanes.channelOf(_consumers[c], _nodes[n]);
                require(settled >= ghostSettledFloor[c][n], "LaneHandler: a lane's settled amount went down");
                ghostSettledFloor[c][n] = settled;
            }
        }
    }
}
