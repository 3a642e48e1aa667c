// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {IPaymentEscrow} from "./interfaces/IPaymentEscrow.sol";
import {IReceiptSettlement} from "./interfaces/IReceiptSettlement.sol";
import {IRewardPool} from "./interfaces/IRewardPool.sol";
import {ReceiptEncoding} from "./libraries/ReceiptEncoding.sol";
import {RewardMath} from "./libraries/RewardMath.sol";

/// @title ReceiptSettlement
/// @notice Verifies consumers' EIP-712 bandwidth receipts and settles them against PaymentEscrow.
/// @dev Gas layout: a channel is one slot (settledAmount, settledBytes as uint128); the node's
/// registry status, the fee rate and the latency curve are read once per call; the node's credit,
/// the protocol fee and the reward weight are written once per call (aggregated over a batch).
contract ReceiptSettlement is IReceiptSettlement, AccessControl, EIP712, Pausable {
    bytes32 public constant PARAMETER_ROLE = keccak256("PARAMETER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant RECEIPT_TYPEHASH = ReceiptEncoding.TYPEHASH;
    uint16 public constant MAX_FEE_BPS = 2_000;
    /// @notice Bytes per receipt in `settleManyPacked`: consumer 20, sessionId 32, cumulativeBytes 16,
    /// cumulativeAmount 16, latencyMs 4, issuedAt 8, then the signature r 32, s 32, v 1.
    uint256 public constant PACKED_RECEIPT_LENGTH = ReceiptEncoding.PACKED_LENGTH;

    struct Channel {
        uint128 settledAmount;
        uint128 settledBytes;
    }

    /// @dev Per-call values read once and totals written once.
    struct Context {
        address node;
        bool rewarded;
        bool curveLoaded;
        uint16 feeBps;
        uint32 lowMs;
        uint32 highMs;
        uint16 floorBps;
        uint256 paid;
        uint256 fee;
        uint256 weight;
    }

    IPaymentEscrow private immutable _escrow;
    INodeRegistry private immutable _registry;
    IRewardPool private immutable _rewardPool;

    // Pausable is the last base, so `_feeBps` packs into the slot of Pausable's `_paused`: the pause
    // check and the fee rate cost one cold storage read per call, not two.
    uint16 private _feeBps;
    mapping(address consumer => mapping(address node => Channel)) private _channels;

    /// @param admin Receives DEFAULT_ADMIN_ROLE, PARAMETER_ROLE and PAUSER_ROLE.
    constructor(address admin, address escrow_, address registry_, address rewardPool_, uint16 feeBps_)
        EIP712("Kuota", "1")
    {
        if (admin == address(0)) revert SettlementZeroAddress("admin");
        if (escrow_ == address(0)) revert SettlementZeroAddress("escrow");
        if (registry_ == address(0)) revert SettlementZeroAddress("registry");
        if (rewardPool_ == address(0)) revert SettlementZeroAddress("rewardPool");
        _checkFeeBps(feeBps_);
        _escrow = IPaymentEscrow(escrow_);
        _registry = INodeRegistry(registry_);
        _rewardPool = IRewardPool(rewardPool_);
        _feeBps = feeBps_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PARAMETER_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
    }

    /// @inheritdoc IReceiptSettlement
    function settle(Receipt calldata receipt, bytes calldata signature)
        external
        whenNotPaused
        returns (uint256 paid)
    {
        Context memory ctx = _context(receipt.node);
        _settleOne(ctx, receipt, signature, true);
        _finish(ctx);
        return ctx.paid;
    }

    /// @inheritdoc IReceiptSettlement
    function settleMany(Receipt[] calldata receipts, bytes[] calldata signatures, bytes32 bundleRoot)
        external
        whenNotPaused
        returns (uint256 paid)
    {
        uint256 count = receipts.length;
        if (count == 0) revert SettlementEmptyBatch();
        if (count != signatures.length) revert SettlementLengthMismatch(count, signatures.length);
        address node = receipts[0].node;
        Context memory ctx = _context(node);
        uint256 settledCount = 0;
        for (uint256 i; i < count; ++i) {
            Receipt calldata receipt = receipts[i];
            if (receipt.node != node) revert SettlementBatchNodeMismatch(i, node, receipt.node);
            if (_settleOne(ctx, receipt, signatures[i], false)) ++settledCount;
        }
        _finish(ctx);
        emit BatchSettled(node, bundleRoot, count, settledCount, ctx.paid, ctx.fee);
        return ctx.paid;
    }

    /// @inheritdoc IReceiptSettlement
    function settleManyPacked(address node, bytes calldata packed, bytes32 bundleRoot)
        external
        whenNotPaused
        returns (uint256 paid)
    {
        uint256 length = packed.length;
        if (length == 0) revert SettlementEmptyBatch();
        if (length % PACKED_RECEIPT_LENGTH != 0) revert SettlementPackedLength(length, PACKED_RECEIPT_LENGTH);
        uint256 count = length / PACKED_RECEIPT_LENGTH;
        Context memory ctx = _context(node);
        // The EIP-712 encoding of the receipt being settled, reused for every receipt of the batch:
        // the type hash, then the seven fields, of which `node` is the batch's for all of them.
        bytes32[8] memory words;
        words[0] = RECEIPT_TYPEHASH;
        words[2] = bytes32(uint256(uint160(node)));
        uint256 settledCount = 0;
        for (uint256 offset; offset < length; offset += PACKED_RECEIPT_LENGTH) {
            if (_settlePacked(ctx, words, packed[offset:offset + PACKED_RECEIPT_LENGTH])) ++settledCount;
        }
        _finish(ctx);
        emit BatchSettled(node, bundleRoot, count, settledCount, ctx.paid, ctx.fee);
        return ctx.paid;
    }

    /// @inheritdoc IReceiptSettlement
    function setFeeBps(uint16 feeBps_) external onlyRole(PARAMETER_ROLE) {
        _checkFeeBps(feeBps_);
        uint256 oldValue = _feeBps;
        _feeBps = feeBps_;
        emit ParameterUpdated("feeBps", oldValue, feeBps_);
    }

    /// @inheritdoc IReceiptSettlement
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc IReceiptSettlement
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @inheritdoc IReceiptSettlement
    function hashReceipt(Receipt calldata receipt) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(receipt));
    }

    /// @inheritdoc IReceiptSettlement
    function channelOf(address consumer, address node)
        external
        view
        returns (uint256 settledAmount, uint256 settledBytes)
    {
        return _settledOf(_channels[consumer][node], consumer, node);
    }

    /// @inheritdoc IReceiptSettlement
    function feeBps() external view returns (uint16) {
        return _feeBps;
    }

    /// @inheritdoc IReceiptSettlement
    function escrow() external view returns (address) {
        return address(_escrow);
    }

    /// @inheritdoc IReceiptSettlement
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IReceiptSettlement
    function rewardPool() external view returns (address) {
        return address(_rewardPool);
    }

    /// @dev What the channel (consumer, node) has settled, from its slot here. A successor module
    /// overrides this to read through to the module it replaced (ReceiptSettlementV2).
    function _settledOf(Channel storage channel, address, address)
        internal
        view
        virtual
        returns (uint256 settledAmount, uint256 settledBytes)
    {
        return (channel.settledAmount, channel.settledBytes);
    }

    /// @dev Reads the node's status once per call: unknown nodes revert; only Active nodes earn reward
    /// weight. Jailed and Exiting nodes are paid for what they served but earn no rewards: an exiting
    /// node no longer needs stake behind it, so rewarding it would pay an operator with nothing at risk.
    function _context(address node) private view returns (Context memory ctx) {
        INodeRegistry.NodeStatus status = _registry.statusOf(node);
        if (status == INodeRegistry.NodeStatus.None) revert SettlementUnknownNode(node);
        ctx.node = node;
        ctx.rewarded = status == INodeRegistry.NodeStatus.Active;
        ctx.feeBps = _feeBps;
    }

    /// @dev Verifies and settles one receipt into `ctx`. Returns false for a stale receipt (skipped
    /// with an event) unless `strict`, where it reverts.
    function _settleOne(Context memory ctx, Receipt calldata receipt, bytes calldata signature, bool strict)
        private
        returns (bool)
    {
        bytes32 digest = _verify(receipt, signature);
        (bool fresh, uint256 paid) = _collect(ctx.node, receipt, digest, strict);
        if (!fresh) return false;
        uint256 fee = _account(ctx, paid, receipt.latencyMs);
        _emitSettled(receipt, digest, signature, paid, fee);
        return true;
    }

    /// @dev `_settleOne` for a receipt of `settleManyPacked`, which is always skipped when stale.
    function _settlePacked(Context memory ctx, bytes32[8] memory words, bytes calldata item) private returns (bool) {
        bytes32 digest = _verifyPacked(words, item);
        (bool fresh, uint256 paid) = _advance(
            address(uint160(uint256(words[1]))), ctx.node, uint256(words[5]), uint256(words[4]), digest, false
        );
        if (!fresh) return false;
        uint256 fee = _account(ctx, paid, uint32(uint256(words[6])));
        ReceiptEncoding.emitSettled(words, digest, item, paid, fee);
        return true;
    }

    /// @dev Unpacks one receipt into `words` (its EIP-712 encoding) and checks its signature; returns the
    /// digest. Each field is read at its own width, so no value can carry dirty high bits and both
    /// cumulative values are below 2^128 by construction.
    function _verifyPacked(bytes32[8] memory words, bytes calldata item) private view returns (bytes32 digest) {
        digest = _hashTypedDataV4(ReceiptEncoding.unpack(words, item));
        address consumer = address(uint160(uint256(words[1])));
        (uint8 v, bytes32 r, bytes32 s) = ReceiptEncoding.signature(item);
        address recovered = ECDSA.recover(digest, v, r, s);
        if (recovered != consumer) revert SettlementInvalidSigner(consumer, recovered);
    }

    /// @dev Range checks and the consumer's signature; returns the EIP-712 digest.
    function _verify(Receipt calldata receipt, bytes calldata signature) private view returns (bytes32 digest) {
        uint256 cumulativeAmount = receipt.cumulativeAmount;
        uint256 cumulativeBytes = receipt.cumulativeBytes;
        if (cumulativeAmount > type(uint128).max) revert SettlementValueTooLarge(cumulativeAmount);
        if (cumulativeBytes > type(uint128).max) revert SettlementValueTooLarge(cumulativeBytes);
        digest = _hashTypedDataV4(_structHash(receipt));
        address consumer = receipt.consumer;
        address recovered = _recover(digest, signature);
        if (recovered != consumer) revert SettlementInvalidSigner(consumer, recovered);
    }

    /// @dev `ECDSA.recover` on a calldata signature without copying it to memory; same checks and
    /// errors as the `bytes memory` overload (length, high s, invalid v or point).
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) revert ECDSA.ECDSAInvalidSignatureLength(signature.length);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 0x20))
            v := byte(0, calldataload(add(signature.offset, 0x40)))
        }
        return ECDSA.recover(digest, v, r, s);
    }

    /// @dev `_advance` for an ABI-decoded receipt.
    function _collect(address node, Receipt calldata receipt, bytes32 digest, bool strict)
        private
        returns (bool fresh, uint256 paid)
    {
        return _advance(receipt.consumer, node, receipt.cumulativeAmount, receipt.cumulativeBytes, digest, strict);
    }

    /// @dev Advances the channel and collects what is owed from escrow. `fresh` is false for a stale
    /// receipt (skipped, or a revert when `strict`). Both cumulative values are below 2^128 (checked
    /// by `_verify`; by construction in `_verifyPacked`).
    function _advance(
        address consumer,
        address node,
        uint256 cumulativeAmount,
        uint256 cumulativeBytes,
        bytes32 digest,
        bool strict
    ) private returns (bool fresh, uint256 paid) {
        Channel storage channel = _channels[consumer][node];
        (uint256 settledAmount, uint256 settledBytes) = _settledOf(channel, consumer, node);
        if (cumulativeAmount <= settledAmount || cumulativeBytes < settledBytes) {
            if (strict) revert SettlementStaleReceipt(consumer, node, cumulativeAmount, settledAmount);
            emit ReceiptSkipped(consumer, node, digest, cumulativeAmount, settledAmount);
            return (false, 0);
        }
        uint256 owed;
        unchecked {
            // cumulativeAmount > settledAmount checked above.
            owed = cumulativeAmount - settledAmount;
        }
        // Effects first, as if escrow pays in full; corrected below when it pays less.
        channel.settledAmount = uint128(cumulativeAmount);
        channel.settledBytes = uint128(cumulativeBytes);
        paid = _escrow.collect(consumer, owed);
        if (paid < owed) {
            // Escrow paid what the consumer had: advance only by that, so the same receipt settles
            // the rest after a top-up. Written after the call, but `_escrow` is immutable (set at
            // deployment) and `collect` only updates escrow storage: it makes no external call that
            // could re-enter here.
            // slither-disable-next-line reentrancy-no-eth
            channel.settledAmount = uint128(settledAmount + paid);
        }
        return (true, paid);
    }

    /// @dev Adds `paid`, its fee and the fee's latency-weighted reward weight to the call's totals.
    function _account(Context memory ctx, uint256 paid, uint32 latencyMs) private view returns (uint256 fee) {
        fee = RewardMath.bps(paid, ctx.feeBps);
        ctx.paid += paid;
        if (fee == 0) return 0;
        ctx.fee += fee;
        if (!ctx.rewarded) return fee;
        if (!ctx.curveLoaded) _loadCurve(ctx);
        uint16 multiplier = RewardMath.latencyMultiplierBps(latencyMs, ctx.lowMs, ctx.highMs, ctx.floorBps);
        ctx.weight += RewardMath.weight(fee, multiplier);
    }

    /// @dev Credits the node and records reward usage once for the whole call.
    function _finish(Context memory ctx) private {
        if (ctx.paid > 0) _escrow.creditNode(ctx.node, ctx.paid - ctx.fee, ctx.fee);
        if (ctx.fee > 0) _rewardPool.recordUsage(ctx.node, ctx.fee, ctx.weight);
    }

    function _loadCurve(Context memory ctx) private view {
        (ctx.lowMs, ctx.highMs, ctx.floorBps) = _rewardPool.latencyCurve();
        ctx.curveLoaded = true;
    }

    /// @dev `emit ReceiptSettled(...)` with the ABI encoding written by hand: the four static receipt
    /// fields are copied from calldata in one `calldatacopy` and the data is laid out in scratch memory
    /// past the free pointer, so a batch neither re-encodes field by field nor grows memory per receipt
    /// (Solidity's encoder did both: ~450 gas a receipt). The log is byte-identical to the Solidity
    /// `emit` (tests decode it with the interface's ABI). Topics: the event id, consumer, node,
    /// sessionId; data: cumulativeBytes, cumulativeAmount, latencyMs, issuedAt, digest, offset of
    /// `signature`, paid, fee, then `signature` (length word and the 65 bytes padded to 96).
    function _emitSettled(Receipt calldata receipt, bytes32 digest, bytes calldata signature, uint256 paid, uint256 fee)
        private
    {
        bytes32 topic0 = ReceiptSettled.selector;
        // Read through Solidity so dirty high bits in these fields revert (as the ABI decoder would).
        address consumer = receipt.consumer;
        address node = receipt.node;
        bytes32 sessionId = receipt.sessionId;
        uint256 sigLength = signature.length; // 65: checked by _recover before any receipt settles
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            // cumulativeBytes, cumulativeAmount, latencyMs, issuedAt: receipt words 3..6, already
            // validated (the amounts by _verify's range checks, the narrow fields by _structHash).
            calldatacopy(ptr, add(receipt, 0x60), 0x80)
            mstore(add(ptr, 0x80), digest)
            mstore(add(ptr, 0xa0), 0x100) // offset of `signature` from the start of the data
            mstore(add(ptr, 0xc0), paid)
            mstore(add(ptr, 0xe0), fee)
            mstore(add(ptr, 0x100), sigLength)
            // The 65 signature bytes and zero padding to a whole word (0x60 bytes in all).
            mstore(add(ptr, 0x160), 0)
            calldatacopy(add(ptr, 0x120), signature.offset, sigLength)
            log4(ptr, 0x180, topic0, consumer, node, sessionId)
        }
    }

    /// @dev keccak256(abi.encode(RECEIPT_TYPEHASH, receipt...)) over the receipt's seven calldata words,
    /// in scratch memory past the free pointer (nothing allocated per receipt of a batch). Every field
    /// is static, so the calldata words are exactly the EIP-712 encoding once they are clean: the
    /// reads below make Solidity's ABI decoder reject dirty high bits in the narrow fields first.
    function _structHash(Receipt calldata receipt) private pure returns (bytes32 hash) {
        // Validation reads (revert on dirty padding); their values are not needed here.
        (receipt.consumer, receipt.node, receipt.latencyMs, receipt.issuedAt);
        bytes32 typehash = RECEIPT_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            calldatacopy(add(ptr, 0x20), receipt, 0xe0)
            hash := keccak256(ptr, 0x100)
        }
    }

    function _checkFeeBps(uint16 value) private pure {
        if (value > MAX_FEE_BPS) revert SettlementParameterOutOfBounds("feeBps", value, 0, MAX_FEE_BPS);
    }
}
