// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IReceiptSettlement
/// @notice Settles consumers' signed cumulative bandwidth receipts: pays nodes from PaymentEscrow (less
/// the protocol fee) and records the fee and its latency-weighted reward weight in RewardPool.
///
/// EIP-712 domain `{name: "Kuota", version: "1", chainId, verifyingContract: this}`; type
/// `Receipt(address consumer,address node,bytes32 sessionId,uint256 cumulativeBytes,uint256 cumulativeAmount,uint32 latencyMs,uint64 issuedAt)`.
/// A channel is (consumer, node) across sessions. Settling pays `cumulativeAmount − settledAmount`
/// (what escrow holds, at most) and advances `settledAmount` by what was paid, so the same receipt
/// settles the rest after a top-up. Whoever submits, the node is credited. Only Active nodes earn
/// reward weight; Jailed and Exiting nodes are paid with their usage recorded at weight 0.
interface IReceiptSettlement {
    /// @notice A consumer's signed statement: up to now, `node` delivered `cumulativeBytes` over all
    /// sessions of the channel and the consumer owes `cumulativeAmount` (payment-token base units) for it.
    struct Receipt {
        address consumer;
        address node;
        bytes32 sessionId;
        uint256 cumulativeBytes;
        uint256 cumulativeAmount;
        uint32 latencyMs;
        uint64 issuedAt;
    }

    /// @notice The receipt is signed by `recovered`, not by its `consumer`.
    error SettlementInvalidSigner(address consumer, address recovered);
    /// @notice `node` is not registered.
    error SettlementUnknownNode(address node);
    /// @notice The receipt pays nothing new: `cumulativeAmount ≤ settledAmount` or its bytes went down.
    error SettlementStaleReceipt(address consumer, address node, uint256 cumulativeAmount, uint256 settledAmount);
    /// @notice A cumulative value does not fit 128 bits.
    error SettlementValueTooLarge(uint256 value);
    /// @notice Receipt `index` of a batch is for `actual`, the batch is for `expected`.
    error SettlementBatchNodeMismatch(uint256 index, address expected, address actual);
    error SettlementLengthMismatch(uint256 receipts, uint256 signatures);
    error SettlementEmptyBatch();
    /// @notice `settleManyPacked` got `length` bytes, not a whole number of `receiptLength`-byte receipts.
    error SettlementPackedLength(uint256 length, uint256 receiptLength);
    error SettlementZeroAddress(string field);
    /// @notice Parameter `name` set to `value`, outside [`min`, `max`].
    error SettlementParameterOutOfBounds(string name, uint256 value, uint256 min, uint256 max);

    /// @notice Every receipt field, its digest and signature: an auditor replays payouts from events alone.
    event ReceiptSettled(
        address indexed consumer,
        address indexed node,
        bytes32 indexed sessionId,
        uint256 cumulativeBytes,
        uint256 cumulativeAmount,
        uint32 latencyMs,
        uint64 issuedAt,
        bytes32 digest,
        bytes signature,
        uint256 paid,
        uint256 fee
    );
    event ReceiptSkipped(address indexed consumer, address indexed node, bytes32 digest, uint256 cumulativeAmount, uint256 settledAmount);
    event BatchSettled(address indexed node, bytes32 indexed bundleRoot, uint256 receiptCount, uint256 settledCount, uint256 paid, uint256 fee);
    event ParameterUpdated(string name, uint256 oldValue, uint256 newValue);

    /// @notice Settles one receipt; reverts `SettlementStaleReceipt` if it pays nothing new.
    /// @return paid What escrow paid (net to the node plus the fee).
    function settle(Receipt calldata receipt, bytes calldata signature) external returns (uint256 paid);

    /// @notice Settles receipts of one node in one call; stale receipts are skipped with `ReceiptSkipped`.
    /// @param bundleRoot Merkle root of the node's published receipt bundle for this batch (for auditors).
    function settleMany(Receipt[] calldata receipts, bytes[] calldata signatures, bytes32 bundleRoot)
        external
        returns (uint256 paid);

    /// @notice `settleMany` with the receipts packed tightly, for the node client: the same checks,
    /// stale receipts skipped, the same events, ~1,400 gas less calldata and decoding per receipt.
    /// @param node The node every receipt is for (its signed `node` field).
    /// @param packed Receipts of PACKED_RECEIPT_LENGTH (161) bytes each, big-endian, no padding:
    /// consumer (20), sessionId (32), cumulativeBytes (16), cumulativeAmount (16), latencyMs (4),
    /// issuedAt (8), then the 65-byte signature r (32), s (32), v (1).
    /// @param bundleRoot Merkle root of the node's published receipt bundle for this batch.
    function settleManyPacked(address node, bytes calldata packed, bytes32 bundleRoot)
        external
        returns (uint256 paid);

    /// @notice PARAMETER_ROLE: protocol fee in bps, at most MAX_FEE_BPS (2000).
    function setFeeBps(uint16 newFeeBps) external;

    /// @notice PAUSER_ROLE: pauses settle and settleMany.
    function pause() external;

    /// @notice PAUSER_ROLE: resumes settlement.
    function unpause() external;

    /// @notice The EIP-712 digest the consumer signs.
    function hashReceipt(Receipt calldata receipt) external view returns (bytes32);

    /// @notice What the channel (consumer, node) has settled so far: amount paid and bytes covered.
    function channelOf(address consumer, address node) external view returns (uint256 settledAmount, uint256 settledBytes);
    /// @notice Protocol fee on settled amounts, in bps.
    function feeBps() external view returns (uint16);
    /// @notice The PaymentEscrow that pays and credits.
    function escrow() external view returns (address);
    /// @notice The NodeRegistry read for node status.
    function registry() external view returns (address);
    /// @notice The RewardPool that records usage and provides the latency curve.
    function rewardPool() external view returns (address);
}
