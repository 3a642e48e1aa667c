// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ILaneSettlement} from "./interfaces/ILaneSettlement.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {IPaymentEscrow} from "./interfaces/IPaymentEscrow.sol";
import {IReceiptSettlement} from "./interfaces/IReceiptSettlement.sol";
import {IRewardPool} from "./interfaces/IRewardPool.sol";
import {ReceiptEncoding} from "./libraries/ReceiptEncoding.sol";
import {RewardMath} from "./libraries/RewardMath.sol";

/// @title LaneSettlement
/// @notice Settles packed receipts from per-(consumer, node) lanes funded out of PaymentEscrow.
/// @dev Gas layout: per receipt, the signature check and one lane slot (read, written once);
/// per batch, the pause/fee/delay slot, the node's status, the latency curve, one escrow payment,
/// one reward record and one event. The fee and the reward weight are computed on the batch's
/// totals: fee = bps(Σ paid), weight = bps(Σ paid × multiplier) / 10,000.
contract LaneSettlement is ILaneSettlement, AccessControl, EIP712, ReentrancyGuard, Pausable {
    bytes32 public constant PARAMETER_ROLE = keccak256("PARAMETER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant RECEIPT_TYPEHASH = ReceiptEncoding.TYPEHASH;
    uint16 public constant MAX_FEE_BPS = 2_000;
    uint64 public constant MIN_CLOSE_DELAY = 10 minutes;
    uint64 public constant MAX_CLOSE_DELAY = 30 days;
    /// @notice Bytes per packed receipt (ReceiptEncoding: consumer 20, sessionId 32, cumulativeBytes
    /// 16, cumulativeAmount 16, latencyMs 4, issuedAt 8, r 32, s 32, v 1).
    uint256 public constant PACKED_RECEIPT_LENGTH = ReceiptEncoding.PACKED_LENGTH;
    /// @notice A lane's balance plus what it settled never exceeds this (its fields are 96 bits).
    uint256 public constant MAX_LANE_TOTAL = type(uint96).max;
    /// @notice Largest cumulative byte count a lane stores (56 bits: 72 PB over a channel's life).
    uint256 public constant MAX_LANE_BYTES = type(uint56).max;

    /// @dev secp256k1n / 2: OZ ECDSA's bound on s (signatures with a higher s are malleable copies).
    uint256 private constant _HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 private constant _MASK_96 = type(uint96).max;

    /// @dev Per-batch values read once and totals written once.
    struct Context {
        address node;
        bool rewarded;
        uint16 feeBps;
        uint32 lowMs;
        uint32 highMs;
        uint16 floorBps;
        uint256 paid;
        uint256 weighted;
        uint256 settledCount;
    }

    IPaymentEscrow private immutable _escrow;
    INodeRegistry private immutable _registry;
    IRewardPool private immutable _rewardPool;

    // Pausable is the last base, so `_feeBps` and `_closeDelay` pack into the slot of Pausable's
    // `_paused`: a settlement reads the pause flag and the fee in one cold storage read.
    uint16 private _feeBps;
    uint64 private _closeDelay;
    mapping(address consumer => mapping(address node => Lane)) private _lanes;
    /// @dev Read only for a lane whose `closing` flag is set.
    mapping(address consumer => mapping(address node => uint64)) private _closeAt;

    /// @param admin Receives DEFAULT_ADMIN_ROLE, PARAMETER_ROLE and PAUSER_ROLE.
    constructor(
        address admin,
        address escrow_,
        address registry_,
        address rewardPool_,
        uint16 feeBps_,
        uint64 closeDelay_
    ) EIP712("Kuota", "1") {
        if (admin == address(0)) revert LaneZeroAddress("admin");
        if (escrow_ == address(0)) revert LaneZeroAddress("escrow");
        if (registry_ == address(0)) revert LaneZeroAddress("registry");
        if (rewardPool_ == address(0)) revert LaneZeroAddress("rewardPool");
        _checkFeeBps(feeBps_);
        _checkCloseDelay(closeDelay_);
        _escrow = IPaymentEscrow(escrow_);
        _registry = INodeRegistry(registry_);
        _rewardPool = IRewardPool(rewardPool_);
        _feeBps = feeBps_;
        _closeDelay = closeDelay_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PARAMETER_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
    }

    /// @inheritdoc ILaneSettlement
    function allocate(address node, uint256 amount) external nonReentrant whenNotPaused {
        _credit(msg.sender, node, amount);
        _escrow.allocateToLanes(msg.sender, amount);
    }

    /// @inheritdoc ILaneSettlement
    function allocateMany(address[] calldata nodes, uint256[] calldata amounts) external nonReentrant whenNotPaused {
        uint256 count = nodes.length;
        if (count != amounts.length) revert LaneLengthMismatch(count, amounts.length);
        uint256 total = 0;
        for (uint256 i; i < count; ++i) {
            _credit(msg.sender, nodes[i], amounts[i]);
            total += amounts[i];
        }
        if (total == 0) revert LaneZeroAmount();
        _escrow.allocateToLanes(msg.sender, total);
    }

    /// @inheritdoc ILaneSettlement
    function requestClose(address node) external returns (uint64 closeAt) {
        Lane storage lane = _lanes[msg.sender][node];
        if (lane.closing) revert LaneClosing(msg.sender, node, _closeAt[msg.sender][node]);
        uint256 balance = lane.balance;
        if (balance == 0) revert LaneEmpty(msg.sender, node);
        closeAt = uint64(block.timestamp) + _closeDelay;
        lane.closing = true;
        _closeAt[msg.sender][node] = closeAt;
        emit LaneCloseRequested(msg.sender, node, balance, closeAt);
    }

    /// @inheritdoc ILaneSettlement
    function finishClose(address node) external nonReentrant returns (uint256 returned) {
        Lane storage lane = _lanes[msg.sender][node];
        if (!lane.closing) revert LaneNotClosing(msg.sender, node);
        uint64 closeAt = _closeAt[msg.sender][node];
        if (block.timestamp < closeAt) revert LaneCloseNotDue(msg.sender, node, closeAt, block.timestamp);
        returned = lane.balance;
        lane.balance = 0;
        lane.closing = false;
        delete _closeAt[msg.sender][node];
        emit LaneClosed(msg.sender, node, returned);
        if (returned > 0) _escrow.releaseFromLanes(msg.sender, returned);
    }

    /// @inheritdoc ILaneSettlement
    function settleLanes(address node, bytes calldata packed, bytes32 bundleRoot)
        external
        nonReentrant
        whenNotPaused
        returns (uint256 paid)
    {
        uint256 length = packed.length;
        if (length == 0) revert LaneEmptyBatch();
        if (length % PACKED_RECEIPT_LENGTH != 0) revert LanePackedLength(length, PACKED_RECEIPT_LENGTH);
        Context memory ctx = _context(node);
        _settleAll(ctx, packed);
        paid = ctx.paid;
        uint256 fee = RewardMath.bps(paid, ctx.feeBps);
        emit LanesSettled(node, bundleRoot, length / PACKED_RECEIPT_LENGTH, ctx.settledCount, paid, fee);
        _finish(ctx, fee);
    }

    /// @inheritdoc ILaneSettlement
    function setFeeBps(uint16 feeBps_) external onlyRole(PARAMETER_ROLE) {
        _checkFeeBps(feeBps_);
        uint256 oldValue = _feeBps;
        _feeBps = feeBps_;
        emit ParameterUpdated("feeBps", oldValue, feeBps_);
    }

    /// @inheritdoc ILaneSettlement
    function setCloseDelay(uint64 closeDelay_) external onlyRole(PARAMETER_ROLE) {
        _checkCloseDelay(closeDelay_);
        uint256 oldValue = _closeDelay;
        _closeDelay = closeDelay_;
        emit ParameterUpdated("closeDelay", oldValue, closeDelay_);
    }

    /// @inheritdoc ILaneSettlement
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc ILaneSettlement
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @inheritdoc ILaneSettlement
    function hashReceipt(IReceiptSettlement.Receipt calldata receipt) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(RECEIPT_TYPEHASH, receipt)));
    }

    /// @inheritdoc ILaneSettlement
    function laneOf(address consumer, address node) external view returns (Lane memory lane, uint64 closeAt) {
        return (_lanes[consumer][node], _closeAt[consumer][node]);
    }

    /// @inheritdoc ILaneSettlement
    function channelOf(address consumer, address node)
        external
        view
        returns (uint256 settledAmount, uint256 settledBytes)
    {
        Lane storage lane = _lanes[consumer][node];
        return (lane.settledAmount, lane.settledBytes);
    }

    /// @inheritdoc ILaneSettlement
    function feeBps() external view returns (uint16) {
        return _feeBps;
    }

    /// @inheritdoc ILaneSettlement
    function closeDelay() external view returns (uint64) {
        return _closeDelay;
    }

    /// @inheritdoc ILaneSettlement
    function escrow() external view returns (address) {
        return address(_escrow);
    }

    /// @inheritdoc ILaneSettlement
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc ILaneSettlement
    function rewardPool() external view returns (address) {
        return address(_rewardPool);
    }

    /// @dev Adds `amount` to the lane (consumer, node); the caller debits the escrow afterwards.
    function _credit(address consumer, address node, uint256 amount) private {
        if (amount == 0) revert LaneZeroAmount();
        if (_registry.statusOf(node) == INodeRegistry.NodeStatus.None) revert LaneUnknownNode(node);
        Lane storage lane = _lanes[consumer][node];
        Lane memory current = lane;
        if (current.closing) revert LaneClosing(consumer, node, _closeAt[consumer][node]);
        uint256 balance = uint256(current.balance) + amount;
        uint256 total = balance + current.settledAmount;
        if (total > MAX_LANE_TOTAL) revert LaneAmountTooLarge(consumer, node, total, MAX_LANE_TOTAL);
        // balance <= total <= 2^96 - 1, checked above.
        lane.balance = uint96(balance);
        emit LaneAllocated(consumer, node, amount, balance);
    }

    /// @dev The node's status (unknown nodes revert; only Active nodes earn reward weight, as in
    /// ReceiptSettlement), the fee rate and the latency curve, read once per batch.
    function _context(address node) private view returns (Context memory ctx) {
        INodeRegistry.NodeStatus status = _registry.statusOf(node);
        if (status == INodeRegistry.NodeStatus.None) revert LaneUnknownNode(node);
        ctx.node = node;
        ctx.feeBps = _feeBps;
        ctx.rewarded = status == INodeRegistry.NodeStatus.Active && ctx.feeBps > 0;
        if (ctx.rewarded) (ctx.lowMs, ctx.highMs, ctx.floorBps) = _rewardPool.latencyCurve();
    }

    /// @dev Verifies every receipt of `packed` and pays it from its lane; totals go into `ctx`.
    /// The loop walks calldata offsets (no slices: their bounds checks cost ~60 gas a receipt).
    function _settleAll(Context memory ctx, bytes calldata packed) private {
        bytes32 domainSeparator = _domainSeparatorV4();
        address node = ctx.node;
        uint256 paid = 0;
        uint256 weighted = 0;
        uint256 settledCount = 0;
        uint256 item;
        uint256 end;
        assembly ("memory-safe") {
            item := packed.offset
            end := add(packed.offset, packed.length)
        }
        for (; item < end; item += PACKED_RECEIPT_LENGTH) {
            (address consumer, uint256 cumulativeBytes, uint256 cumulativeAmount) = _recover(domainSeparator, node, item);
            uint256 pay = _payLane(consumer, node, cumulativeAmount, cumulativeBytes);
            if (pay == 0) continue;
            unchecked {
                // Each pay is below 2^96 and came out of lane funds: the sums cannot overflow.
                paid += pay;
                ++settledCount;
            }
            if (ctx.rewarded) weighted += pay * _multiplier(ctx, item);
        }
        ctx.paid = paid;
        ctx.weighted = weighted;
        ctx.settledCount = settledCount;
    }

    /// @dev The packed receipt at calldata offset `item` (ReceiptEncoding's layout), its EIP-712 digest
    /// over this contract's domain and its signer, checked as OZ `ECDSA.recover` checks it (s in the
    /// lower half order, else `ECDSAInvalidSignatureS`; a failed recovery, v other than 27 or 28
    /// included, is `ECDSAInvalidSignature`). Each field is read at its own width, so none carries
    /// dirty bits; both cumulative values are below 2^128. Written in assembly over scratch memory
    /// past the free pointer: nothing is allocated per receipt.
    function _recover(bytes32 domainSeparator, address node, uint256 item)
        private
        view
        returns (address consumer, uint256 cumulativeBytes, uint256 cumulativeAmount)
    {
        bytes32 typehash = RECEIPT_TYPEHASH;
        bytes32 digest;
        bytes32 s;
        assembly ("memory-safe") {
            let w := mload(0x40)
            consumer := shr(96, calldataload(item))
            cumulativeBytes := shr(128, calldataload(add(item, 52)))
            cumulativeAmount := shr(128, calldataload(add(item, 68)))
            mstore(w, typehash)
            mstore(add(w, 0x20), consumer)
            mstore(add(w, 0x40), node)
            mstore(add(w, 0x60), calldataload(add(item, 20))) // sessionId
            mstore(add(w, 0x80), cumulativeBytes)
            mstore(add(w, 0xa0), cumulativeAmount)
            mstore(add(w, 0xc0), shr(224, calldataload(add(item, 84)))) // latencyMs
            mstore(add(w, 0xe0), shr(192, calldataload(add(item, 88)))) // issuedAt
            let structHash := keccak256(w, 0x100)
            // MessageHashUtils.toTypedDataHash: keccak256("\x19\x01" ‖ domainSeparator ‖ structHash).
            mstore(w, hex"1901")
            mstore(add(w, 0x02), domainSeparator)
            mstore(add(w, 0x22), structHash)
            digest := keccak256(w, 0x42)
            s := calldataload(add(item, 128))
        }
        if (uint256(s) > _HALF_ORDER) revert ECDSA.ECDSAInvalidSignatureS(s);
        address recovered;
        assembly ("memory-safe") {
            let w := mload(0x40)
            mstore(w, digest)
            mstore(add(w, 0x20), byte(0, calldataload(add(item, 160)))) // v
            mstore(add(w, 0x40), calldataload(add(item, 96))) // r
            mstore(add(w, 0x60), s)
            // The precompile writes nothing when recovery fails: zero the output word first.
            mstore(0x00, 0)
            pop(staticcall(gas(), 0x01, w, 0x80, 0x00, 0x20))
            recovered := mload(0x00)
        }
        if (recovered == address(0)) revert ECDSA.ECDSAInvalidSignature();
        if (recovered != consumer) revert LaneInvalidSigner(consumer, recovered);
    }

    /// @dev Pays `min(cumulativeAmount − settledAmount, balance)` from the lane (consumer, node) and
    /// returns it, reading and writing the lane's one slot once. A stale receipt, an empty lane and a
    /// lane past its close pay nothing and write nothing. The word is `Lane`'s Solidity layout:
    /// balance in bits 0–95, settledAmount 96–191, settledBytes 192–247, closing 248–255.
    function _payLane(address consumer, address node, uint256 cumulativeAmount, uint256 cumulativeBytes)
        private
        returns (uint256 pay)
    {
        if (cumulativeBytes > MAX_LANE_BYTES) revert LaneBytesTooLarge(cumulativeBytes, MAX_LANE_BYTES);
        uint256 slot;
        uint256 word;
        assembly ("memory-safe") {
            // _lanes[consumer][node]: keccak256(node ‖ keccak256(consumer ‖ _lanes.slot)).
            mstore(0x00, consumer)
            mstore(0x20, _lanes.slot)
            mstore(0x20, keccak256(0x00, 0x40))
            mstore(0x00, node)
            slot := keccak256(0x00, 0x40)
            word := sload(slot)
        }
        uint256 balance = word & _MASK_96;
        uint256 settled = (word >> 96) & _MASK_96;
        if (cumulativeAmount <= settled || cumulativeBytes < (word >> 192) & MAX_LANE_BYTES) return 0;
        uint256 closing = word >> 248;
        if (closing != 0 && block.timestamp >= _closeAt[consumer][node]) return 0;
        unchecked {
            // cumulativeAmount > settled checked above.
            uint256 owed = cumulativeAmount - settled;
            pay = owed < balance ? owed : balance;
        }
        if (pay == 0) return 0;
        unchecked {
            // pay <= balance, and settled + balance <= MAX_LANE_TOTAL (kept by `_credit`), so both
            // fields stay within 96 bits; cumulativeBytes fits 56 bits (checked above).
            word = (balance - pay) | ((settled + pay) << 96) | (cumulativeBytes << 192) | (closing << 248);
        }
        assembly ("memory-safe") {
            sstore(slot, word)
        }
    }

    /// @dev The latency multiplier of the receipt at calldata offset `item` on the batch's curve.
    function _multiplier(Context memory ctx, uint256 item) private pure returns (uint256) {
        uint32 latencyMs;
        assembly ("memory-safe") {
            latencyMs := shr(224, calldataload(add(item, 84)))
        }
        return RewardMath.latencyMultiplierBps(latencyMs, ctx.lowMs, ctx.highMs, ctx.floorBps);
    }

    /// @dev Pays the node and the fee out of the lane funds and records the reward usage, once.
    /// `fee` is the batch's; the weight is the fee's share at the paid-weighted latency multiplier.
    function _finish(Context memory ctx, uint256 fee) private {
        if (ctx.paid == 0) return;
        _escrow.payFromLanes(ctx.node, ctx.paid - fee, fee);
        if (fee == 0) return;
        uint256 weight = ctx.rewarded ? RewardMath.bps(ctx.weighted, ctx.feeBps) / RewardMath.BPS : 0;
        _rewardPool.recordUsage(ctx.node, fee, weight);
    }

    function _checkFeeBps(uint16 value) private pure {
        if (value > MAX_FEE_BPS) revert LaneParameterOutOfBounds("feeBps", value, 0, MAX_FEE_BPS);
    }

    function _checkCloseDelay(uint64 value) private pure {
        if (value < MIN_CLOSE_DELAY || value > MAX_CLOSE_DELAY) {
            revert LaneParameterOutOfBounds("closeDelay", value, MIN_CLOSE_DELAY, MAX_CLOSE_DELAY);
        }
    }
}
