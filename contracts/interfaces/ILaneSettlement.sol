// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IReceiptSettlement} from "./IReceiptSettlement.sol";

/// @title ILaneSettlement
/// @notice Settlement through lanes: a consumer allocates part of its PaymentEscrow deposit to a lane
/// reserved for one node, and that node's receipts are paid from the lane alone.
///
/// Receipts are the `IReceiptSettlement.Receipt` type, signed over the EIP-712 domain
/// `{name: "Kuota", version: "1", chainId, verifyingContract: this}` and checked exactly as
/// ReceiptSettlement checks them (OZ `ECDSA.recover`: low s, v of 27 or 28). A lane is one storage
/// word (its balance, what it settled and the settled bytes), so a batch writes one slot per lane and
/// emits one event; auditors replay the receipts from the batch's calldata and its bundle.
///
/// Custody: PaymentEscrow holds every token. An allocation moves funds from the consumer's available
/// balance to the lane funds the escrow books for this module; a settlement pays the node's credit and
/// the protocol fee out of them; a finished close moves the rest back to available. So
/// `Σ lane balances == PaymentEscrow.laneFundsOf(this)` after every transaction.
///
/// Closing: `requestClose` starts the close delay. Until `closeAt` the lane keeps paying its node's
/// receipts (nothing else can take its funds); from `closeAt` on it pays nothing and `finishClose`
/// returns its balance to the consumer's available funds. The settled amount and bytes survive the
/// close, so a receipt settled before can never be paid again through a reopened lane.
interface ILaneSettlement {
    /// @notice One lane, one storage word.
    struct Lane {
        /// What the lane still holds (payment-token base units).
        uint96 balance;
        /// What the lane has paid over its life: the channel's settled cumulative amount.
        uint96 settledAmount;
        /// The channel's settled cumulative bytes (receipts with fewer are stale).
        uint56 settledBytes;
        /// A close was requested; `closeAtOf` holds when the lane stops paying.
        bool closing;
    }

    /// @notice The packed receipt is signed by `recovered`, not by its `consumer`.
    error LaneInvalidSigner(address consumer, address recovered);
    /// @notice `node` is not registered.
    error LaneUnknownNode(address node);
    error LaneEmptyBatch();
    /// @notice `settleLanes` got `length` bytes, not a whole number of `receiptLength`-byte receipts.
    error LanePackedLength(uint256 length, uint256 receiptLength);
    /// @notice A receipt's cumulative bytes `value` does not fit a lane (`max`).
    error LaneBytesTooLarge(uint256 value, uint256 max);
    /// @notice The lane would hold more over its life (settled + balance = `total`) than `max`.
    error LaneAmountTooLarge(address consumer, address node, uint256 total, uint256 max);
    error LaneZeroAmount();
    error LaneLengthMismatch(uint256 nodes, uint256 amounts);
    /// @notice The lane (consumer, node) is closing (at `closeAt`): no allocation until it is closed.
    error LaneClosing(address consumer, address node, uint64 closeAt);
    /// @notice The lane (consumer, node) has no close in progress.
    error LaneNotClosing(address consumer, address node);
    /// @notice The lane (consumer, node) holds nothing to close.
    error LaneEmpty(address consumer, address node);
    /// @notice The close of (consumer, node) finishes at `closeAt`; it is `now`.
    error LaneCloseNotDue(address consumer, address node, uint64 closeAt, uint256 now);
    error LaneZeroAddress(string field);
    /// @notice Parameter `name` set to `value`, outside [`min`, `max`].
    error LaneParameterOutOfBounds(string name, uint256 value, uint256 min, uint256 max);

    event LaneAllocated(address indexed consumer, address indexed node, uint256 amount, uint256 balance);
    event LaneCloseRequested(address indexed consumer, address indexed node, uint256 balance, uint64 closeAt);
    event LaneClosed(address indexed consumer, address indexed node, uint256 returned);
    /// @notice One event per batch: `receiptCount` receipts, `settledCount` of which paid something,
    /// `paid` in all (the node got `paid − fee`). The receipts are in the transaction's calldata; the
    /// node publishes the bundle whose Merkle root is `bundleRoot`.
    event LanesSettled(
        address indexed node,
        bytes32 indexed bundleRoot,
        uint256 receiptCount,
        uint256 settledCount,
        uint256 paid,
        uint256 fee
    );
    event ParameterUpdated(string name, uint256 oldValue, uint256 newValue);

    /// @notice Moves `amount` of the caller's available escrow into its lane for `node` (a top-up
    /// when the lane exists). Refused while the lane is closing.
    function allocate(address node, uint256 amount) external;

    /// @notice `allocate` for each (nodes[i], amounts[i]), with one escrow debit for the total.
    function allocateMany(address[] calldata nodes, uint256[] calldata amounts) external;

    /// @notice Starts closing the caller's lane for `node`: it pays until `now + closeDelay`.
    function requestClose(address node) external returns (uint64 closeAt);

    /// @notice After `closeAt`, returns the caller's lane balance for `node` to its available escrow.
    function finishClose(address node) external returns (uint256 returned);

    /// @notice Settles `packed` receipts of `node` (ReceiptEncoding's 161-byte layout) from their
    /// lanes: each pays `min(cumulativeAmount − settledAmount, lane balance)`; stale receipts, empty
    /// lanes and lanes past their close pay nothing. Credits the node and the fee once, records the
    /// reward usage once, emits `LanesSettled` once. Anyone may submit; the node is paid.
    function settleLanes(address node, bytes calldata packed, bytes32 bundleRoot) external returns (uint256 paid);

    /// @notice PARAMETER_ROLE: protocol fee in basis points, at most MAX_FEE_BPS.
    function setFeeBps(uint16 newFeeBps) external;

    /// @notice PARAMETER_ROLE: close delay in seconds, within [MIN_CLOSE_DELAY, MAX_CLOSE_DELAY].
    /// Applies to later close requests.
    function setCloseDelay(uint64 newCloseDelay) external;

    /// @notice PAUSER_ROLE: stops allocations and settlements. Closes stay open, so funds never
    /// stay locked while settlement is stopped.
    function pause() external;

    function unpause() external;

    /// @notice The EIP-712 digest the consumer signs for `receipt` (over this contract's domain).
    function hashReceipt(IReceiptSettlement.Receipt calldata receipt) external view returns (bytes32);

    /// @notice The lane (consumer, node) and, when closing, when it stops paying (0 otherwise).
    function laneOf(address consumer, address node) external view returns (Lane memory lane, uint64 closeAt);

    /// @notice What the channel (consumer, node) has settled through lanes (as `channelOf` elsewhere).
    function channelOf(address consumer, address node) external view returns (uint256 settledAmount, uint256 settledBytes);

    function feeBps() external view returns (uint16);

    function closeDelay() external view returns (uint64);

    function escrow() external view returns (address);

    function registry() external view returns (address);

    function rewardPool() external view returns (address);
}
