// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Test} from "forge-std/Test.sol";

import {KuotaToken} from "contracts/KuotaToken.sol";
import {NodeRegistry} from "contracts/NodeRegistry.sol";
import {PaymentEscrow} from "contracts/PaymentEscrow.sol";
import {ReceiptSettlement} from "contracts/ReceiptSettlement.sol";
import {RewardPool} from "contracts/RewardPool.sol";
import {Staking} from "contracts/Staking.sol";
import {INodeRegistry} from "contracts/interfaces/INodeRegistry.sol";
import {IReceiptSettlement} from "contracts/interfaces/IReceiptSettlement.sol";
import {IRewardPool} from "contracts/interfaces/IRewardPool.sol";
import {MockUSD} from "contracts/test/MockUSD.sol";

import {ReceiptKit} from "../utils/KuotaSystem.sol";

/// @notice The system's deployed contracts and its privileged accounts, as the handler receives them.
struct Deployment {
    MockUSD usd;
    KuotaToken kuota;
    Staking staking;
    NodeRegistry registry;
    PaymentEscrow escrow;
    RewardPool rewards;
    ReceiptSettlement settlement;
    address deployer;
    address slasher;
    address reporter;
}

/// @notice The actions the invariant campaign calls, in random order with bounded random inputs:
/// escrow deposits, thaws and withdrawals by several consumers; receipts settled one by one and in
/// batches (ABI and packed) with valid signatures, plus replayed, stale and forged ones; epochs moved
/// on with vm.warp; rewards finalised and claimed; stake bonded, unbonded, withdrawn and slashed;
/// nodes registered, jailed and unjailed. Each action checks its own preconditions, so a revert is
/// never expected by accident, and the reverts it provokes on purpose are asserted by their exact error.
///
/// Ghost variables record what went in and out (per token and per channel) and the outcome the
/// contracts' rules predict, for the invariant_* checks in KuotaInvariants.t.sol.
contract KuotaHandler is Test {
    uint256 public constant CONSUMERS = 3;
    uint256 public constant OPERATORS = 2;
    uint256 public constant MAX_NODES = 5;
    uint256 private constant MAX_BATCH = 6;
    uint256 private constant MAX_STEP = 5e6;
    /// A few receipts' worth (6-decimal mUSD): consumers run dry often, so settlements are paid in
    /// part, from thawing funds too, and replays of partly paid receipts settle the rest.
    uint256 private constant INITIAL_DEPOSIT = 10e6;

    struct Signed {
        IReceiptSettlement.Receipt receipt;
        bytes signature;
    }

    MockUSD internal immutable _usd;
    KuotaToken internal immutable _kuota;
    Staking internal immutable _staking;
    NodeRegistry internal immutable _registry;
    PaymentEscrow internal immutable _escrow;
    RewardPool internal immutable _rewards;
    ReceiptSettlement internal immutable _settlement;
    address internal immutable _deployer;
    address internal immutable _slasher;
    address internal immutable _reporter;
    uint256 internal immutable _minStake;

    uint256[CONSUMERS] internal _consumerKeys;
    address[CONSUMERS] public consumers;
    address[OPERATORS] public operators;
    address[] public nodes;
    mapping(address node => address) public payoutOf;
    uint256 internal _nextNodeKey = 0xB0DE;

    // Time: vm.warp is re-applied at the start of every action from this ghost clock.
    uint256 public ghostTime;

    // Escrow ghosts (payment token).
    uint256 public ghostDeposited;
    uint256 public ghostConsumerWithdrawn;
    uint256 public ghostEarningsWithdrawn;
    uint256 public ghostFeesSwept;
    uint256 public ghostSettledPaid;

    // Channel ghosts, per (consumer index, node): the highest values the consumer signed, the settled
    // amount the rules predict, the last value seen on chain, and the last receipt for replays.
    mapping(uint256 c => mapping(address node => uint256)) public signedAmount;
    mapping(uint256 c => mapping(address node => uint256)) public signedBytes;
    mapping(uint256 c => mapping(address node => uint256)) public modelSettled;
    mapping(uint256 c => mapping(address node => uint256)) internal _seenSettled;
    mapping(uint256 c => mapping(address node => Signed)) internal _last;
    bool public channelDecreased;

    // Stake ghosts (KUOTA).
    uint256 public ghostStaked;
    uint256 public ghostStakeWithdrawn;
    uint256 public ghostSlashed;
    uint256 public ghostBurned;

    // Reward ghosts: what each claim minted, the epochs that saw usage.
    mapping(address node => mapping(uint256 epoch => uint256)) public ghostClaimed;
    uint256 public ghostTotalClaimed;
    uint256[] public usageEpochs;
    mapping(uint256 epoch => bool) internal _isUsageEpoch;

    mapping(bytes32 action => uint256) public calls;

    constructor(Deployment memory d, uint256 minStake) {
        _usd = d.usd;
        _kuota = d.kuota;
        _staking = d.staking;
        _registry = d.registry;
        _escrow = d.escrow;
        _rewards = d.rewards;
        _settlement = d.settlement;
        _deployer = d.deployer;
        _slasher = d.slasher;
        _reporter = d.reporter;
        _minStake = minStake;
        ghostTime = block.timestamp;
        for (uint256 i; i < CONSUMERS; ++i) {
            _consumerKeys[i] = uint256(keccak256(abi.encode("kuota consumer", i))) % SECP256K1_ORDER;
            consumers[i] = vm.addr(_consumerKeys[i]);
        }
        for (uint256 i; i < OPERATORS; ++i) {
            operators[i] = makeAddr(string.concat("operator", vm.toString(i)));
        }
    }

    modifier action(bytes32 name) {
        vm.warp(ghostTime);
        ++calls[name];
        _;
        _recordChannels();
    }

    // ------------------------------------------------------------------ set-up helpers (not targeted)

    /// @notice Bonds stake for and registers the first nodes: operator 0 runs two, operator 1 one.
    function bootstrap() external {
        for (uint256 i; i < 3; ++i) {
            _registerFor(i == 2 ? 1 : 0);
        }
        for (uint256 c; c < CONSUMERS; ++c) {
            _deposit(c, INITIAL_DEPOSIT);
        }
    }

    // ------------------------------------------------------------------ escrow

    function deposit(uint256 c, uint256 amount) external action("deposit") {
        _deposit(c % CONSUMERS, bound(amount, 1, 4 * INITIAL_DEPOSIT));
    }

    function requestThaw(uint256 c, uint256 amount) external action("requestThaw") {
        address consumer = consumers[c % CONSUMERS];
        uint256 available = _escrow.availableOf(consumer);
        if (available == 0) return;
        vm.prank(consumer);
        _escrow.requestThaw(bound(amount, 1, available));
    }

    function cancelThaw(uint256 c) external action("cancelThaw") {
        address consumer = consumers[c % CONSUMERS];
        if (_escrow.thawingOf(consumer) == 0) return;
        vm.prank(consumer);
        _escrow.cancelThaw();
    }

    function withdraw(uint256 c) external action("withdraw") {
        address consumer = consumers[c % CONSUMERS];
        (, uint256 thawing, uint64 thawEndsAt) = _escrow.accountOf(consumer);
        if (thawing == 0 || block.timestamp < thawEndsAt) return;
        uint256 before = _usd.balanceOf(consumer);
        vm.prank(consumer);
        _escrow.withdraw();
        assertEq(_usd.balanceOf(consumer) - before, thawing, "withdraw paid the thawing amount");
        ghostConsumerWithdrawn += thawing;
    }

    function withdrawEarnings(uint256 n) external action("withdrawEarnings") {
        address node = nodes[n % nodes.length];
        uint256 credit = _escrow.creditOf(node);
        if (credit == 0) return;
        uint256 before = _usd.balanceOf(payoutOf[node]);
        assertEq(_escrow.withdrawEarnings(node), credit, "withdrawEarnings return");
        assertEq(_usd.balanceOf(payoutOf[node]) - before, credit, "payout received the credit");
        ghostEarningsWithdrawn += credit;
    }

    function sweepFees() external action("sweepFees") {
        uint256 fees = _escrow.accruedFees();
        if (fees == 0) return;
        assertEq(_escrow.sweepFees(), fees, "sweepFees return");
        ghostFeesSwept += fees;
    }

    // ------------------------------------------------------------------ settlement

    /// @notice One fresh receipt through `settle`: pays what is owed, capped by the consumer's funds.
    function settle(uint256 c, uint256 n, uint256 step, uint32 latencyMs) external action("settle") {
        c %= CONSUMERS;
        address node = nodes[n % nodes.length];
        Signed memory s = _signNext(c, node, bound(step, 1, MAX_STEP), latencyMs);
        uint256 expected = _expectedPaid(c, node, s.receipt.cumulativeAmount);
        uint256 paid = _settlement.settle(s.receipt, s.signature);
        assertEq(paid, expected, "settle paid");
        if (paid < s.receipt.cumulativeAmount - modelSettled[c][node]) ++calls["settle: paid in part"];
        _settled(c, node, paid);
    }

    /// @notice The consumer's last receipt again. Fully settled: refused as stale with the amounts.
    /// Paid in part for lack of funds: it settles the rest now (up to what the consumer holds).
    function replay(uint256 c, uint256 n) external action("replay") {
        c %= CONSUMERS;
        address node = nodes[n % nodes.length];
        Signed memory s = _last[c][node];
        if (s.signature.length == 0) return;
        uint256 amount = s.receipt.cumulativeAmount;
        (uint256 settledAmount,) = _settlement.channelOf(consumers[c], node);
        if (amount <= settledAmount) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IReceiptSettlement.SettlementStaleReceipt.selector, consumers[c], node, amount, settledAmount
                )
            );
            _settlement.settle(s.receipt, s.signature);
            ++calls["replay: refused as stale"];
            return;
        }
        ++calls["replay: settled the unpaid rest"];
        uint256 expected = _expectedPaid(c, node, amount);
        assertEq(_settlement.settle(s.receipt, s.signature), expected, "replay of a partly paid receipt");
        _settled(c, node, expected);
    }

    /// @notice A receipt for consumer `c` signed with another consumer's key: refused, naming both.
    function forged(uint256 c, uint256 n, uint256 other, uint256 step) external action("forged") {
        c %= CONSUMERS;
        uint256 signer = (c + 1 + other % (CONSUMERS - 1)) % CONSUMERS;
        address node = nodes[n % nodes.length];
        IReceiptSettlement.Receipt memory receipt = _receipt(c, node, signedAmount[c][node] + bound(step, 1, MAX_STEP), 0);
        bytes memory signature = ReceiptKit.sign(vm, _settlement, _consumerKeys[signer], receipt);
        vm.expectRevert(
            abi.encodeWithSelector(
                IReceiptSettlement.SettlementInvalidSigner.selector, consumers[c], consumers[signer]
            )
        );
        _settlement.settle(receipt, signature);
    }

    /// @notice A batch for one node through settleMany or settleManyPacked: fresh receipts from several
    /// consumers mixed with stale ones (the last receipt replayed, or an amount already settled), which
    /// the batch skips. The total paid must be what settling them one by one in order would pay.
    function settleBatch(uint256 seed, uint256 n, uint256 count, bool packed) external action("settleBatch") {
        address node = nodes[n % nodes.length];
        count = bound(count, 1, MAX_BATCH);
        IReceiptSettlement.Receipt[] memory receipts = new IReceiptSettlement.Receipt[](count);
        bytes[] memory signatures = new bytes[](count);
        bytes memory packedReceipts;
        uint256[CONSUMERS] memory funds;
        for (uint256 c; c < CONSUMERS; ++c) {
            funds[c] = _escrow.availableOf(consumers[c]) + _escrow.thawingOf(consumers[c]);
        }
        uint256 expected;
        for (uint256 i; i < count; ++i) {
            uint256 word = uint256(keccak256(abi.encode(seed, i)));
            uint256 c = word % CONSUMERS;
            Signed memory s = _batchReceipt(c, node, word);
            receipts[i] = s.receipt;
            signatures[i] = s.signature;
            if (packed) packedReceipts = bytes.concat(packedReceipts, ReceiptKit.pack(s.receipt, s.signature));
            uint256 amount = s.receipt.cumulativeAmount;
            uint256 settledAmount = modelSettled[c][node];
            if (amount <= settledAmount) {
                ++calls["settleBatch: stale skipped"];
                continue;
            }
            uint256 paid = amount - settledAmount < funds[c] ? amount - settledAmount : funds[c];
            if (paid < amount - settledAmount) ++calls["settle: paid in part"];
            funds[c] -= paid;
            expected += paid;
            _settled(c, node, paid);
        }
        uint256 total = packed
            ? _settlement.settleManyPacked(node, packedReceipts, bytes32(seed))
            : _settlement.settleMany(receipts, signatures, bytes32(seed));
        assertEq(total, expected, "batch paid");
        // _settled counted each receipt's payment; the batch total is the same sum.
    }

    // ------------------------------------------------------------------ time and rewards

    function advanceTime(uint256 seconds_) external action("advanceTime") {
        ghostTime += bound(seconds_, 1, 3 * _rewards.epochLength());
        vm.warp(ghostTime);
    }

    function finalizeEpochs(uint256 maxCount) external action("finalizeEpochs") {
        uint256 pending = _rewards.currentEpoch() - _rewards.finalizedThrough();
        maxCount = bound(maxCount, 1, 64);
        assertEq(_rewards.finalizeEpochs(maxCount), pending < maxCount ? pending : maxCount, "finalized count");
    }

    /// @notice Claims one finished epoch of a node: mints exactly the previewed amount to its payout;
    /// a second claim of the same epoch is refused.
    function claim(uint256 n, uint256 e) external action("claim") {
        uint256 count = usageEpochs.length;
        if (count == 0) return;
        address node = nodes[n % nodes.length];
        uint256 epoch = usageEpochs[e % count];
        if (epoch >= _rewards.currentEpoch()) return;
        uint256[] memory epochs = new uint256[](1);
        epochs[0] = epoch;
        (,,, bool claimed) = _rewards.nodeEpoch(node, epoch);
        if (claimed) {
            vm.expectRevert(abi.encodeWithSelector(IRewardPool.RewardsAlreadyClaimed.selector, node, epoch));
            _rewards.claim(node, epochs);
            return;
        }
        uint256 preview = _rewards.claimable(node, epoch);
        if (preview == 0) return;
        uint256 before = _kuota.balanceOf(payoutOf[node]);
        assertEq(_rewards.claim(node, epochs), preview, "claim minted the preview");
        assertEq(_kuota.balanceOf(payoutOf[node]) - before, preview, "payout received the reward");
        ++calls["claim: minted"];
        ghostClaimed[node][epoch] = preview;
        ghostTotalClaimed += preview;
    }

    // ------------------------------------------------------------------ stake and nodes

    function stake(uint256 o, uint256 amount) external action("stake") {
        _stake(operators[o % OPERATORS], bound(amount, 1, 2 * _minStake));
    }

    /// @notice Unbonds part of the stake above what the operator's live nodes require.
    function requestUnbond(uint256 o, uint256 amount) external action("requestUnbond") {
        address operator = operators[o % OPERATORS];
        uint256 bonded = _staking.bondedOf(operator);
        uint256 required = _registry.requiredStake(operator);
        if (bonded <= required) return;
        vm.prank(operator);
        _staking.requestUnbond(bound(amount, 1, bonded - required));
    }

    function withdrawStake(uint256 o) external action("withdrawStake") {
        address operator = operators[o % OPERATORS];
        (uint256 unbonding, uint64 withdrawableAt) = _staking.unbondingOf(operator);
        if (unbonding == 0 || block.timestamp < withdrawableAt) return;
        vm.prank(operator);
        _staking.withdraw();
        ghostStakeWithdrawn += unbonding;
    }

    /// @notice Slashes bonded stake first, then unbonding; more than the operator holds takes it all.
    function slash(uint256 o, uint256 amount, bool withReporter) external action("slash") {
        address operator = operators[o % OPERATORS];
        (uint256 unbonding,) = _staking.unbondingOf(operator);
        uint256 total = _staking.bondedOf(operator) + unbonding;
        if (total == 0) return;
        amount = bound(amount, 1, 2 * total);
        uint256 slashed = amount < total ? amount : total;
        uint256 reward = withReporter ? (slashed * _staking.slashReporterBps()) / 10_000 : 0;
        uint256 reporterBefore = _kuota.balanceOf(_reporter);
        vm.prank(_slasher);
        _staking.slash(operator, amount, withReporter ? _reporter : address(0));
        assertEq(_kuota.balanceOf(_reporter) - reporterBefore, reward, "reporter reward");
        ghostSlashed += slashed;
        ghostBurned += slashed - reward;
    }

    /// @notice Registers a new node for an operator, topping its stake up to the requirement first.
    function registerNode(uint256 o) external action("registerNode") {
        if (nodes.length == MAX_NODES) return;
        _registerFor(o % OPERATORS);
    }

    /// @notice Jails an active node or releases a jailed one: jailed nodes are paid but earn no reward.
    function toggleJail(uint256 n) external action("toggleJail") {
        address node = nodes[n % nodes.length];
        INodeRegistry.NodeStatus status = _registry.statusOf(node);
        vm.prank(_slasher);
        if (status == INodeRegistry.NodeStatus.Jailed) _registry.unjail(node);
        else _registry.jail(node, "invariant campaign");
    }

    // ------------------------------------------------------------------ views for the invariants

    function nodeCount() external view returns (uint256) {
        return nodes.length;
    }

    function usageEpochCount() external view returns (uint256) {
        return usageEpochs.length;
    }

    // ------------------------------------------------------------------ internals

    function _deposit(uint256 c, uint256 amount) private {
        address consumer = consumers[c];
        _usd.mint(consumer, amount);
        vm.startPrank(consumer);
        _usd.approve(address(_escrow), amount);
        _escrow.deposit(amount);
        vm.stopPrank();
        ghostDeposited += amount;
    }

    function _stake(address operator, uint256 amount) private {
        vm.prank(_deployer);
        _kuota.transfer(operator, amount);
        vm.startPrank(operator);
        _kuota.approve(address(_staking), amount);
        _staking.stake(amount);
        vm.stopPrank();
        ghostStaked += amount;
    }

    function _registerFor(uint256 o) private {
        address operator = operators[o];
        uint256 required = _registry.requiredStake(operator) + _minStake;
        uint256 bonded = _staking.bondedOf(operator);
        if (bonded < required) _stake(operator, required - bonded);
        uint256 key = _nextNodeKey++;
        address node = vm.addr(key);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, _registry.nodeKeyDigest(node, node, operator));
        address payout = makeAddr(string.concat("payout", vm.toString(nodes.length)));
        vm.prank(operator);
        _registry.register(node, payout, 1e6, 1_000, "eu-west", "", abi.encodePacked(r, s, v));
        nodes.push(node);
        payoutOf[node] = payout;
    }

    function _receipt(uint256 c, address node, uint256 amount, uint32 latencyMs)
        private
        view
        returns (IReceiptSettlement.Receipt memory)
    {
        return IReceiptSettlement.Receipt({
            consumer: consumers[c],
            node: node,
            sessionId: keccak256(abi.encode("session", c, node)),
            // Bytes grow with the amount, so a receipt is stale exactly when its amount is.
            cumulativeBytes: amount * 1_024,
            cumulativeAmount: amount,
            latencyMs: latencyMs,
            issuedAt: uint64(block.timestamp)
        });
    }

    /// @dev Signs the consumer's next receipt, `step` above the highest amount it signed before.
    function _signNext(uint256 c, address node, uint256 step, uint32 latencyMs) private returns (Signed memory s) {
        uint256 amount = signedAmount[c][node] + step;
        s.receipt = _receipt(c, node, amount, uint32(bound(latencyMs, 0, 2_000)));
        s.signature = ReceiptKit.sign(vm, _settlement, _consumerKeys[c], s.receipt);
        signedAmount[c][node] = amount;
        signedBytes[c][node] = s.receipt.cumulativeBytes;
        _last[c][node] = s;
    }

    /// @dev One receipt of a batch: three in four advance the channel, the rest are stale (the last
    /// receipt replayed if it is fully settled, else one re-signed at the settled amount).
    function _batchReceipt(uint256 c, address node, uint256 word) private returns (Signed memory s) {
        uint256 settledAmount = modelSettled[c][node];
        if ((word >> 8) % 4 != 0 || settledAmount == 0) {
            return _signNext(c, node, 1 + ((word >> 16) % MAX_STEP), uint32(word >> 64));
        }
        s = _last[c][node];
        if (s.receipt.cumulativeAmount > settledAmount) {
            s.receipt = _receipt(c, node, settledAmount, uint32(bound(word >> 64, 0, 2_000)));
            s.signature = ReceiptKit.sign(vm, _settlement, _consumerKeys[c], s.receipt);
        }
    }

    /// @dev What settling a receipt of `amount` pays now: the owed difference, capped by the consumer's
    /// available plus thawing funds (thawing funds still pay settlements).
    function _expectedPaid(uint256 c, address node, uint256 amount) private view returns (uint256) {
        uint256 settledAmount = modelSettled[c][node];
        if (amount <= settledAmount) return 0;
        (uint256 available, uint256 thawing,) = _escrow.accountOf(consumers[c]);
        uint256 owed = amount - settledAmount;
        return owed < available + thawing ? owed : available + thawing;
    }

    function _settled(uint256 c, address node, uint256 paid) private {
        modelSettled[c][node] += paid;
        ghostSettledPaid += paid;
        uint256 epoch = _rewards.currentEpoch();
        if (paid > 0 && !_isUsageEpoch[epoch]) {
            _isUsageEpoch[epoch] = true;
            usageEpochs.push(epoch);
        }
    }

    /// @dev After every action: no channel's settled amount may have gone down since the last one.
    function _recordChannels() private {
        uint256 count = nodes.length;
        for (uint256 c; c < CONSUMERS; ++c) {
            for (uint256 i; i < count; ++i) {
                address node = nodes[i];
                (uint256 settledAmount,) = _settlement.channelOf(consumers[c], node);
                if (settledAmount < _seenSettled[c][node]) channelDecreased = true;
                _seenSettled[c][node] = settledAmount;
            }
        }
    }
}
