// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IReceiptSettlement} from "../interfaces/IReceiptSettlement.sol";
import {IRewardPool} from "../interfaces/IRewardPool.sol";
import {ReceiptEncoding} from "../libraries/ReceiptEncoding.sol";

/// @title Gas floor probes (MEASUREMENT PROBES, NOT PROTOCOL)
/// @notice Minimal contracts that do only the irreducible storage, signature and event work of Kuota's
/// settlement and reward-claim models, so `make bench` can measure the gas FLOOR of each model with
/// real transactions and print it beside the issue-7 targets. They hold no tokens, have no access
/// control, no pause, no registry, no thawing balance, no latency curve and no reward cap: never
/// deploy them anywhere but a private benchmark or test chain.
///
/// Honest within their scope: every receipt is verified exactly as `ReceiptSettlement` verifies it
/// (the same EIP-712 `Receipt` type string, OZ `EIP712` domain separator and `ECDSA.recover` of a
/// calldata signature, reverting on a wrong signer), stale cumulative receipts revert (single settle)
/// or are skipped (batches), and a receipt pays min(owed, what the consumer or channel still holds).
/// Each batch comes twice: with ABI calldata (`Receipt[]`, `bytes[]`, as `settleMany`) and `...Packed`
/// (161 bytes a receipt, node once, decoded as `ReceiptSettlement.settleManyPacked` decodes them).

/// @notice The settlement floor. Domain `{name: "KuotaFloor", version: "1", chainId, this}`.
/// Storage is the minimum the pooled-escrow model writes per receipt and per call:
/// - per receipt: the channel slot and the consumer's pooled balance (pooled model), or the one
///   per-channel escrow slot (channel-funded model);
/// - per call: the node's credit, the accrued protocol fee, the node's weight in the current epoch
///   and the epoch's total weight (fee = paid × FEE_BPS / 10,000, weight = fee).
/// Balances are plain numbers: `fund` and `fundChannel` credit them without moving any token (a
/// probe needs no token transfer: the real deposit happens in another transaction).
contract SettlementFloorProbe is EIP712 {
    bytes32 public constant RECEIPT_TYPEHASH = ReceiptEncoding.TYPEHASH;
    /// @notice The local deployment's protocol fee.
    uint256 public constant FEE_BPS = 500;
    /// @notice Bytes per receipt in the `...Packed` batches, as `ReceiptSettlement.PACKED_RECEIPT_LENGTH`:
    /// consumer 20, sessionId 32, cumulativeBytes 16, cumulativeAmount 16, latencyMs 4, issuedAt 8, r 32,
    /// s 32, v 1 (big-endian, no padding; the node is passed once per batch).
    uint256 public constant PACKED_RECEIPT_LENGTH = ReceiptEncoding.PACKED_LENGTH;

    struct Channel {
        uint128 settledAmount;
        uint128 settledBytes;
    }

    /// @dev The per-channel escrow model (The Graph TAP/Horizon per payer–receiver escrow, Orchid's
    /// pots): what the consumer locked for this node and what is settled, in one slot.
    struct FundedChannel {
        uint96 funded;
        uint96 settledAmount;
        uint64 settledBytes;
    }

    uint256 private immutable _genesis;
    uint256 private immutable _epochLength;

    mapping(address consumer => uint128) public availableOf;
    mapping(address consumer => mapping(address node => Channel)) private _channels;
    mapping(address consumer => mapping(address node => FundedChannel)) private _funded;
    mapping(address node => uint256) public creditOf;
    uint256 public accruedFees;
    mapping(address node => mapping(uint256 epoch => uint256)) public weightOf;
    mapping(uint256 epoch => uint256) public epochWeight;

    constructor(uint256 genesis_, uint256 epochLength_) EIP712("KuotaFloor", "1") {
        _genesis = genesis_;
        _epochLength = epochLength_;
    }

    // --- set-up (no tokens move) ------------------------------------------------------------------

    /// @notice Adds `amount` to `consumer`'s pooled balance.
    function fund(address consumer, uint128 amount) external {
        availableOf[consumer] += amount;
    }

    /// @notice Adds `amount` to the escrow locked for the channel (consumer, node).
    function fundChannel(address consumer, address node, uint96 amount) external {
        _funded[consumer][node].funded += amount;
    }

    // --- views ------------------------------------------------------------------------------------

    function currentEpoch() public view returns (uint256) {
        return (block.timestamp - _genesis) / _epochLength;
    }

    function hashReceipt(IReceiptSettlement.Receipt calldata receipt) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(receipt));
    }

    function channelOf(address consumer, address node)
        external
        view
        returns (uint256 settledAmount, uint256 settledBytes)
    {
        Channel storage channel = _channels[consumer][node];
        return (channel.settledAmount, channel.settledBytes);
    }

    function fundedChannelOf(address consumer, address node)
        external
        view
        returns (uint256 funded, uint256 settledAmount, uint256 settledBytes)
    {
        FundedChannel storage channel = _funded[consumer][node];
        return (channel.funded, channel.settledAmount, channel.settledBytes);
    }

    // --- a. one receipt, pooled escrow ------------------------------------------------------------

    /// @notice One receipt: signature, channel, consumer balance, node credit, fee, node weight and
    /// epoch total, all in this contract; no event, no external call. Reverts on a stale receipt.
    function settlePooled(IReceiptSettlement.Receipt calldata receipt, bytes calldata signature)
        external
        returns (uint256 paid)
    {
        _verify(receipt, signature, type(uint128).max, type(uint128).max);
        bool fresh;
        (fresh, paid) = _collectPooled(receipt);
        if (!fresh) {
            revert IReceiptSettlement.SettlementStaleReceipt(
                receipt.consumer, receipt.node, receipt.cumulativeAmount, _channels[receipt.consumer][receipt.node].settledAmount
            );
        }
        uint256 fee = paid * FEE_BPS / 10_000;
        _finish(receipt.node, paid, fee);
    }

    // --- b. batch, pooled escrow ------------------------------------------------------------------

    /// @notice Receipts of one node: per receipt the channel and the consumer balance; the node's
    /// credit, the fee, the node weight and the epoch total once per call. Stale receipts are skipped.
    function settleManyPooled(IReceiptSettlement.Receipt[] calldata receipts, bytes[] calldata signatures)
        external
        returns (uint256 paid)
    {
        address node = _checkBatch(receipts, signatures);
        uint256 fee;
        for (uint256 i; i < receipts.length; ++i) {
            IReceiptSettlement.Receipt calldata receipt = receipts[i];
            if (receipt.node != node) revert IReceiptSettlement.SettlementBatchNodeMismatch(i, node, receipt.node);
            _verify(receipt, signatures[i], type(uint128).max, type(uint128).max);
            (bool fresh, uint256 one) = _collectPooled(receipt);
            if (!fresh) continue;
            paid += one;
            fee += one * FEE_BPS / 10_000;
        }
        _finish(node, paid, fee);
    }

    // --- c. batch, pooled escrow, with Kuota's events ---------------------------------------------

    /// @notice `settleManyPooled` plus `ReceiptSettled` per receipt (every field, digest, signature,
    /// paid, fee), `ReceiptSkipped` per stale receipt and one `BatchSettled`, as IReceiptSettlement declares them.
    function settleManyPooledLogged(
        IReceiptSettlement.Receipt[] calldata receipts,
        bytes[] calldata signatures,
        bytes32 bundleRoot
    ) external returns (uint256 paid) {
        address node = _checkBatch(receipts, signatures);
        uint256 fee;
        uint256 settledCount;
        for (uint256 i; i < receipts.length; ++i) {
            IReceiptSettlement.Receipt calldata receipt = receipts[i];
            if (receipt.node != node) revert IReceiptSettlement.SettlementBatchNodeMismatch(i, node, receipt.node);
            bytes32 digest = _verify(receipt, signatures[i], type(uint128).max, type(uint128).max);
            (bool fresh, uint256 one) = _collectPooled(receipt);
            if (!fresh) {
                emit IReceiptSettlement.ReceiptSkipped(
                    receipt.consumer,
                    node,
                    digest,
                    receipt.cumulativeAmount,
                    _channels[receipt.consumer][node].settledAmount
                );
                continue;
            }
            uint256 oneFee = one * FEE_BPS / 10_000;
            paid += one;
            fee += oneFee;
            ++settledCount;
            _emitSettled(receipt, digest, signatures[i], one, oneFee);
        }
        _finish(node, paid, fee);
        emit IReceiptSettlement.BatchSettled(node, bundleRoot, receipts.length, settledCount, paid, fee);
    }

    // --- d. batch, per-channel escrow -------------------------------------------------------------

    /// @notice Receipts of one node against per-channel escrow: per receipt one slot (funded,
    /// settled amount, settled bytes), no pooled consumer balance; per call as `settleManyPooled`.
    function settleManyChannelFunded(IReceiptSettlement.Receipt[] calldata receipts, bytes[] calldata signatures)
        external
        returns (uint256 paid)
    {
        address node = _checkBatch(receipts, signatures);
        uint256 fee;
        for (uint256 i; i < receipts.length; ++i) {
            IReceiptSettlement.Receipt calldata receipt = receipts[i];
            if (receipt.node != node) revert IReceiptSettlement.SettlementBatchNodeMismatch(i, node, receipt.node);
            _verify(receipt, signatures[i], type(uint96).max, type(uint64).max);
            FundedChannel storage channel = _funded[receipt.consumer][node];
            FundedChannel memory c = channel;
            uint256 cumulativeAmount = receipt.cumulativeAmount;
            if (cumulativeAmount <= c.settledAmount || receipt.cumulativeBytes < c.settledBytes) continue;
            uint256 owed = cumulativeAmount - c.settledAmount;
            uint256 left = c.funded - c.settledAmount; // settledAmount never exceeds funded
            uint256 one = owed < left ? owed : left;
            // Both < 2^96 / 2^64: checked in _verify (settled + one ≤ funded < 2^96).
            channel.settledAmount = uint96(c.settledAmount + one);
            channel.settledBytes = uint64(receipt.cumulativeBytes);
            paid += one;
            fee += one * FEE_BPS / 10_000;
        }
        _finish(node, paid, fee);
    }

    // --- e. the batches again, packed calldata (as ReceiptSettlement.settleManyPacked) ------------

    /// @notice `settleManyPooled` over 161-byte packed receipts of `node` (the layout and decoding of
    /// `ReceiptSettlement.settleManyPacked`: the EIP-712 words rebuilt in one reused memory array).
    function settleManyPooledPacked(address node, bytes calldata packed) external returns (uint256 paid) {
        uint256 length = _checkPacked(packed);
        bytes32[8] memory words = _packedWords(node);
        uint256 fee;
        for (uint256 offset; offset < length; offset += PACKED_RECEIPT_LENGTH) {
            _verifyPacked(words, packed[offset:offset + PACKED_RECEIPT_LENGTH]);
            (bool fresh, uint256 one) = _collect(_consumerOf(words), node, uint256(words[5]), uint256(words[4]));
            if (!fresh) continue;
            paid += one;
            fee += one * FEE_BPS / 10_000;
        }
        _finish(node, paid, fee);
    }

    /// @notice `settleManyPooledLogged` over packed receipts: `ReceiptSettled` per receipt (every field,
    /// digest, signature, paid, fee; the log bytes of ReceiptSettlement's), `ReceiptSkipped` per stale
    /// receipt and one `BatchSettled`.
    function settleManyPooledLoggedPacked(address node, bytes calldata packed, bytes32 bundleRoot)
        external
        returns (uint256 paid)
    {
        uint256 length = _checkPacked(packed);
        bytes32[8] memory words = _packedWords(node);
        uint256 fee;
        uint256 settledCount;
        for (uint256 offset; offset < length; offset += PACKED_RECEIPT_LENGTH) {
            (bool fresh, uint256 one, uint256 oneFee) =
                _settleLoggedPacked(words, node, packed[offset:offset + PACKED_RECEIPT_LENGTH]);
            if (!fresh) continue;
            paid += one;
            fee += oneFee;
            ++settledCount;
        }
        _finish(node, paid, fee);
        emit IReceiptSettlement.BatchSettled(
            node, bundleRoot, length / PACKED_RECEIPT_LENGTH, settledCount, paid, fee
        );
    }

    /// @notice `settleManyChannelFunded` over packed receipts of `node`.
    function settleManyChannelFundedPacked(address node, bytes calldata packed) external returns (uint256 paid) {
        uint256 length = _checkPacked(packed);
        bytes32[8] memory words = _packedWords(node);
        uint256 fee;
        for (uint256 offset; offset < length; offset += PACKED_RECEIPT_LENGTH) {
            _verifyPacked(words, packed[offset:offset + PACKED_RECEIPT_LENGTH]);
            uint256 cumulativeBytes = uint256(words[4]);
            uint256 cumulativeAmount = uint256(words[5]);
            // The packed fields are < 2^128; this model's slot holds 96 and 64 bits.
            if (cumulativeAmount > type(uint96).max) revert IReceiptSettlement.SettlementValueTooLarge(cumulativeAmount);
            if (cumulativeBytes > type(uint64).max) revert IReceiptSettlement.SettlementValueTooLarge(cumulativeBytes);
            FundedChannel storage channel = _funded[_consumerOf(words)][node];
            FundedChannel memory c = channel;
            if (cumulativeAmount <= c.settledAmount || cumulativeBytes < c.settledBytes) continue;
            uint256 owed = cumulativeAmount - c.settledAmount;
            uint256 left = c.funded - c.settledAmount; // settledAmount never exceeds funded
            uint256 one = owed < left ? owed : left;
            // settled + one ≤ funded < 2^96; cumulativeBytes < 2^64 checked above.
            channel.settledAmount = uint96(c.settledAmount + one);
            channel.settledBytes = uint64(cumulativeBytes);
            paid += one;
            fee += one * FEE_BPS / 10_000;
        }
        _finish(node, paid, fee);
    }

    // --- internals --------------------------------------------------------------------------------

    function _checkBatch(IReceiptSettlement.Receipt[] calldata receipts, bytes[] calldata signatures)
        private
        pure
        returns (address node)
    {
        uint256 count = receipts.length;
        if (count == 0) revert IReceiptSettlement.SettlementEmptyBatch();
        if (count != signatures.length) revert IReceiptSettlement.SettlementLengthMismatch(count, signatures.length);
        return receipts[0].node;
    }

    /// @dev Range checks and the consumer's signature (as ReceiptSettlement._verify); returns the digest.
    function _verify(
        IReceiptSettlement.Receipt calldata receipt,
        bytes calldata signature,
        uint256 maxAmount,
        uint256 maxBytes
    ) private view returns (bytes32 digest) {
        if (receipt.cumulativeAmount > maxAmount) revert IReceiptSettlement.SettlementValueTooLarge(receipt.cumulativeAmount);
        if (receipt.cumulativeBytes > maxBytes) revert IReceiptSettlement.SettlementValueTooLarge(receipt.cumulativeBytes);
        digest = _hashTypedDataV4(_structHash(receipt));
        if (signature.length != 65) revert ECDSA.ECDSAInvalidSignatureLength(signature.length);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 0x20))
            v := byte(0, calldataload(add(signature.offset, 0x40)))
        }
        address recovered = ECDSA.recover(digest, v, r, s);
        if (recovered != receipt.consumer) revert IReceiptSettlement.SettlementInvalidSigner(receipt.consumer, recovered);
    }

    /// @dev Pooled model: pays min(cumulativeAmount − settledAmount, consumer's balance) and advances
    /// the channel by what was paid (the rest settles after a top-up). `fresh` is false when stale.
    function _collectPooled(IReceiptSettlement.Receipt calldata receipt) private returns (bool fresh, uint256 paid) {
        return _collect(receipt.consumer, receipt.node, receipt.cumulativeAmount, receipt.cumulativeBytes);
    }

    /// @dev `_collectPooled` on plain values; both cumulative values are < 2^128 (checked in `_verify`,
    /// by construction in `_verifyPacked`).
    function _collect(address consumer, address node, uint256 cumulativeAmount, uint256 cumulativeBytes)
        private
        returns (bool fresh, uint256 paid)
    {
        Channel storage channel = _channels[consumer][node];
        uint256 settledAmount = channel.settledAmount;
        if (cumulativeAmount <= settledAmount || cumulativeBytes < channel.settledBytes) return (false, 0);
        uint256 owed = cumulativeAmount - settledAmount;
        uint256 available = availableOf[consumer];
        paid = owed < available ? owed : available;
        availableOf[consumer] = uint128(available - paid);
        // settledAmount + paid ≤ cumulativeAmount < 2^128.
        channel.settledAmount = uint128(settledAmount + paid);
        channel.settledBytes = uint128(cumulativeBytes);
        return (true, paid);
    }

    /// @dev Once per call: node credit, accrued fee, node weight in the current epoch, epoch total.
    function _finish(address node, uint256 paid, uint256 fee) private {
        if (paid == 0) return;
        creditOf[node] += paid - fee;
        if (fee == 0) return;
        accruedFees += fee;
        uint256 epoch = currentEpoch();
        weightOf[node][epoch] += fee;
        epochWeight[epoch] += fee;
    }

    function _emitSettled(
        IReceiptSettlement.Receipt calldata receipt,
        bytes32 digest,
        bytes calldata signature,
        uint256 paid,
        uint256 fee
    ) private {
        emit IReceiptSettlement.ReceiptSettled(
            receipt.consumer,
            receipt.node,
            receipt.sessionId,
            receipt.cumulativeBytes,
            receipt.cumulativeAmount,
            receipt.latencyMs,
            receipt.issuedAt,
            digest,
            signature,
            paid,
            fee
        );
    }

    /// @dev One receipt of `settleManyPooledLoggedPacked`: verified, collected, and its event.
    function _settleLoggedPacked(bytes32[8] memory words, address node, bytes calldata item)
        private
        returns (bool fresh, uint256 paid, uint256 fee)
    {
        bytes32 digest = _verifyPacked(words, item);
        address consumer = _consumerOf(words);
        uint256 cumulativeAmount = uint256(words[5]);
        (fresh, paid) = _collect(consumer, node, cumulativeAmount, uint256(words[4]));
        if (!fresh) {
            emit IReceiptSettlement.ReceiptSkipped(
                consumer, node, digest, cumulativeAmount, _channels[consumer][node].settledAmount
            );
            return (false, 0, 0);
        }
        fee = paid * FEE_BPS / 10_000;
        ReceiptEncoding.emitSettled(words, digest, item, paid, fee);
    }

    /// @dev A packed batch's length: nonzero and a whole number of receipts (as settleManyPacked).
    function _checkPacked(bytes calldata packed) private pure returns (uint256 length) {
        length = packed.length;
        if (length == 0) revert IReceiptSettlement.SettlementEmptyBatch();
        if (length % PACKED_RECEIPT_LENGTH != 0) {
            revert IReceiptSettlement.SettlementPackedLength(length, PACKED_RECEIPT_LENGTH);
        }
    }

    /// @dev The EIP-712 encoding reused for every receipt of a packed batch: the type hash, then the
    /// seven fields, of which `node` is the batch's for all of them.
    function _packedWords(address node) private pure returns (bytes32[8] memory words) {
        words[0] = RECEIPT_TYPEHASH;
        words[2] = bytes32(uint256(uint160(node)));
    }

    function _consumerOf(bytes32[8] memory words) private pure returns (address) {
        return address(uint160(uint256(words[1])));
    }

    /// @dev As ReceiptSettlement._verifyPacked: unpacks one receipt into `words` (its EIP-712 encoding),
    /// each field at its own width, and checks the consumer's signature; returns the digest.
    function _verifyPacked(bytes32[8] memory words, bytes calldata item) private view returns (bytes32 digest) {
        digest = _hashTypedDataV4(ReceiptEncoding.unpack(words, item));
        address consumer = _consumerOf(words);
        (uint8 v, bytes32 r, bytes32 s) = ReceiptEncoding.signature(item);
        address recovered = ECDSA.recover(digest, v, r, s);
        if (recovered != consumer) revert IReceiptSettlement.SettlementInvalidSigner(consumer, recovered);
    }

    /// @dev As ReceiptSettlement._structHash: the seven clean calldata words are the EIP-712 encoding.
    function _structHash(IReceiptSettlement.Receipt calldata receipt) private pure returns (bytes32 hash) {
        (receipt.consumer, receipt.node, receipt.latencyMs, receipt.issuedAt); // reject dirty padding
        bytes32 typehash = RECEIPT_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            calldatacopy(add(ptr, 0x20), receipt, 0xe0)
            hash := keccak256(ptr, 0x100)
        }
    }
}

/// @notice Minimal reward token for `ClaimFloorProbe.claimViaToken`: OZ ERC20 whose only minter is an
/// immutable address (no AccessControl storage read). Measurement probe, not protocol.
contract FloorRewardToken is ERC20 {
    error FloorNotMinter(address caller);

    address public immutable minter;

    constructor(address minter_) ERC20("Kuota Floor", "KFLOOR") {
        minter = minter_;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert FloorNotMinter(msg.sender);
        _mint(to, amount);
    }
}

/// @notice Minimal payout registry for `ClaimFloorProbe.claimViaTokenAndRegistry`: the payout lookup as
/// the cross-contract call Kuota makes to NodeRegistry. Measurement probe, not protocol (open setter).
contract FloorPayoutRegistry {
    mapping(address node => address) public payoutOf;

    function setPayout(address node, address payout) external {
        payoutOf[node] = payout;
    }
}

/// @notice The warm one-epoch claim floor: the (node, epoch) record is read and marked claimed, the
/// epoch's {paid, totalCapped} read, the payout read from a mapping here (standing in for the
/// registry lookup), reward = weight × paid / totalCapped, then minted — inline (this contract is the
/// ERC20) or through a separate minimal token. No finalisation, pause, cap or claimed-total state.
/// Measurement probe, not protocol: the set-up functions are open to anyone.
contract ClaimFloorProbe is ERC20 {
    error FloorAlreadyClaimed(address node, uint256 epoch);
    error FloorUnknownNode(address node);
    error FloorNothingToClaim(address node);

    struct NodeRecord {
        uint120 weight;
        bool claimed;
    }

    struct Epoch {
        uint128 paid;
        uint128 totalCapped;
    }

    FloorRewardToken public immutable token;
    FloorPayoutRegistry public immutable registry;

    mapping(address node => mapping(uint256 epoch => NodeRecord)) private _records;
    mapping(uint256 epoch => Epoch) private _epochs;
    mapping(address node => address) public payoutOf;

    constructor() ERC20("Kuota Floor Inline", "KFLOORI") {
        token = new FloorRewardToken(address(this));
        registry = new FloorPayoutRegistry();
    }

    // --- set-up -----------------------------------------------------------------------------------

    function setPayout(address node, address payout) external {
        payoutOf[node] = payout;
    }

    function setRecord(address node, uint256 epoch, uint120 weight) external {
        _records[node][epoch] = NodeRecord({weight: weight, claimed: false});
    }

    function setEpoch(uint256 epoch, uint128 paid, uint128 totalCapped) external {
        _epochs[epoch] = Epoch({paid: paid, totalCapped: totalCapped});
    }

    function recordOf(address node, uint256 epoch) external view returns (uint256 weight, bool claimed) {
        NodeRecord storage record = _records[node][epoch];
        return (record.weight, record.claimed);
    }

    // --- claims -----------------------------------------------------------------------------------

    /// @notice Claim one epoch, minted by this contract's own `_mint`: no external call at all.
    function claimMintInline(address node, uint256 epoch) external returns (uint256 reward) {
        address payout = payoutOf[node];
        reward = _claim(node, epoch, payout);
        emit IRewardPool.RewardClaimed(node, epoch, payout, reward);
        _mint(payout, reward);
    }

    /// @notice `claimMintInline` without the RewardClaimed event (what the event costs).
    function claimMintInlineNoEvent(address node, uint256 epoch) external returns (uint256 reward) {
        address payout = payoutOf[node];
        reward = _claim(node, epoch, payout);
        _mint(payout, reward);
    }

    /// @notice Claim one epoch, minted by `FloorRewardToken.mint` (one external call).
    function claimViaToken(address node, uint256 epoch) external returns (uint256 reward) {
        address payout = payoutOf[node];
        reward = _claim(node, epoch, payout);
        emit IRewardPool.RewardClaimed(node, epoch, payout, reward);
        token.mint(payout, reward);
    }

    /// @notice `claimViaToken` with the payout read from the separate `registry` (Kuota's three-contract
    /// shape: pool, registry, token), i.e. two external calls.
    function claimViaTokenAndRegistry(address node, uint256 epoch) external returns (uint256 reward) {
        address payout = registry.payoutOf(node);
        reward = _claim(node, epoch, payout);
        emit IRewardPool.RewardClaimed(node, epoch, payout, reward);
        token.mint(payout, reward);
    }

    function _claim(address node, uint256 epoch, address payout) private returns (uint256 reward) {
        if (payout == address(0)) revert FloorUnknownNode(node);
        NodeRecord storage record = _records[node][epoch];
        if (record.claimed) revert FloorAlreadyClaimed(node, epoch);
        record.claimed = true;
        Epoch memory ep = _epochs[epoch];
        uint256 weight = record.weight;
        if (weight != 0 && ep.paid != 0) reward = Math.mulDiv(weight, ep.paid, ep.totalCapped);
        if (reward == 0) revert FloorNothingToClaim(node);
    }
}
