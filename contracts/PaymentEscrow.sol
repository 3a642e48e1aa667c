// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {IPaymentEscrow} from "./interfaces/IPaymentEscrow.sol";

/// @title PaymentEscrow
/// @notice Holds consumers' payment-token deposits; ReceiptSettlement collects from them and credits
/// nodes, which withdraw to their payout address. Lane modules (LaneSettlement) book part of a
/// consumer's deposit into per-node lanes: the tokens stay here, counted in `laneFundsOf(module)`.
contract PaymentEscrow is IPaymentEscrow, AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    bytes32 public constant PARAMETER_ROLE = keccak256("PARAMETER_ROLE");
    bytes32 public constant SETTLEMENT_ROLE = keccak256("SETTLEMENT_ROLE");
    bytes32 public constant LANES_ROLE = keccak256("LANES_ROLE");
    uint64 public constant MAX_THAWING_PERIOD = 30 days;

    /// @dev available and thawing share one slot: a settlement that drains into the thawing funds
    /// reads and writes a single slot.
    struct Balances {
        uint128 available;
        uint128 thawing;
    }

    IERC20 private immutable _paymentToken;
    INodeRegistry private immutable _registry;

    mapping(address consumer => Balances) private _balances;
    mapping(address consumer => uint64) private _thawEndsAt;
    /// @dev Read by every settlement: the SETTLEMENT_ROLE holder granted last (a cache of the role,
    /// not a second authority: any holder passes, this one without the cold role lookup) and the
    /// accrued protocol fees, in one slot. `collect` reads it once per call, so `creditNode`'s
    /// check and fee update find it warm: ~2,100 gas less per settle call and ~180 less per receipt
    /// of a batch than two AccessControl lookups and a separate fee slot.
    struct SettlementSlot {
        address settlement;
        uint96 accruedFees;
    }

    mapping(address node => uint256) private _credits;
    SettlementSlot private _settlementSlot;
    address private _treasury;
    uint64 private _thawingPeriod;
    /// @dev Per module, so a module can only ever spend what consumers allocated through it. Spending
    /// (payFromLanes, releaseFromLanes) needs these funds, not LANES_ROLE: a module whose role was
    /// revoked takes no new allocations but still pays its lanes' nodes and returns closed lanes.
    mapping(address module => uint256) private _laneFunds;

    /// @param admin Receives DEFAULT_ADMIN_ROLE and PARAMETER_ROLE (SETTLEMENT_ROLE is granted to ReceiptSettlement).
    constructor(address admin, address paymentToken_, address registry_, address treasury_, uint64 thawingPeriod_) {
        if (admin == address(0)) revert EscrowZeroAddress("admin");
        if (paymentToken_ == address(0)) revert EscrowZeroAddress("paymentToken");
        if (registry_ == address(0)) revert EscrowZeroAddress("registry");
        if (treasury_ == address(0)) revert EscrowZeroAddress("treasury");
        _checkThawingPeriod(thawingPeriod_);
        _paymentToken = IERC20(paymentToken_);
        _registry = INodeRegistry(registry_);
        _treasury = treasury_;
        _thawingPeriod = thawingPeriod_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PARAMETER_ROLE, admin);
    }

    /// @inheritdoc IPaymentEscrow
    function deposit(uint256 amount) external nonReentrant {
        _deposit(msg.sender, amount);
    }

    /// @inheritdoc IPaymentEscrow
    function depositFor(address consumer, uint256 amount) external nonReentrant {
        if (consumer == address(0)) revert EscrowZeroAddress("consumer");
        _deposit(consumer, amount);
    }

    /// @inheritdoc IPaymentEscrow
    function requestThaw(uint256 amount) external {
        if (amount == 0) revert EscrowZeroAmount();
        Balances storage balances = _balances[msg.sender];
        uint256 available = balances.available;
        if (available < amount) revert EscrowInsufficientAvailable(msg.sender, available, amount);
        uint64 thawEndsAt = uint64(block.timestamp) + _thawingPeriod;
        unchecked {
            // amount <= available <= 2^128 - 1; available + thawing never exceeds the deposited total,
            // which fitted a uint128 when it was deposited.
            balances.available = uint128(available - amount);
            balances.thawing += uint128(amount);
        }
        _thawEndsAt[msg.sender] = thawEndsAt;
        emit ThawRequested(msg.sender, amount, thawEndsAt);
    }

    /// @inheritdoc IPaymentEscrow
    function cancelThaw() external {
        Balances storage balances = _balances[msg.sender];
        uint128 thawing = balances.thawing;
        if (thawing == 0) revert EscrowNothingThawing(msg.sender);
        unchecked {
            // Sum of both is at most the deposited total (see requestThaw).
            balances.available += thawing;
        }
        balances.thawing = 0;
        _thawEndsAt[msg.sender] = 0;
        emit ThawCancelled(msg.sender, thawing);
    }

    /// @inheritdoc IPaymentEscrow
    function withdraw() external nonReentrant {
        Balances storage balances = _balances[msg.sender];
        uint256 amount = balances.thawing;
        if (amount == 0) revert EscrowNothingThawing(msg.sender);
        uint64 thawEndsAt = _thawEndsAt[msg.sender];
        if (block.timestamp < thawEndsAt) revert EscrowThawNotFinished(msg.sender, thawEndsAt, block.timestamp);
        balances.thawing = 0;
        _thawEndsAt[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        _paymentToken.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IPaymentEscrow
    function collect(address consumer, uint256 amount) external returns (uint256 paid) {
        _checkSettlement(_settlementSlot.settlement);
        Balances storage balances = _balances[consumer];
        uint256 available = balances.available;
        if (available >= amount) {
            unchecked {
                // amount <= available.
                balances.available = uint128(available - amount);
            }
            return amount;
        }
        // Funds that are thawing still pay settlements that land before the withdrawal.
        uint256 thawing = balances.thawing;
        uint256 fromThawing;
        unchecked {
            // available < amount here.
            fromThawing = amount - available;
        }
        if (fromThawing > thawing) fromThawing = thawing;
        unchecked {
            // fromThawing <= thawing; paid <= available + thawing < 2^129.
            balances.available = 0;
            balances.thawing = uint128(thawing - fromThawing);
            paid = available + fromThawing;
        }
    }

    /// @inheritdoc IPaymentEscrow
    function creditNode(address node, uint256 net, uint256 fee) external {
        SettlementSlot memory slot = _settlementSlot;
        _checkSettlement(slot.settlement);
        _credit(node, net, fee, slot.accruedFees);
    }

    /// @inheritdoc IPaymentEscrow
    function allocateToLanes(address consumer, uint256 amount) external onlyRole(LANES_ROLE) {
        Balances storage balances = _balances[consumer];
        uint256 available = balances.available;
        if (available < amount) revert EscrowInsufficientAvailable(consumer, available, amount);
        unchecked {
            // amount <= available.
            balances.available = uint128(available - amount);
        }
        _laneFunds[msg.sender] += amount;
        emit LaneFundsAllocated(consumer, msg.sender, amount);
    }

    /// @inheritdoc IPaymentEscrow
    function releaseFromLanes(address consumer, uint256 amount) external {
        _spendLaneFunds(amount);
        Balances storage balances = _balances[consumer];
        // The consumer's available + thawing must stay below 2^128 (the unchecked blocks rely on it).
        balances.available =
            SafeCast.toUint128(uint256(balances.available) + balances.thawing + amount) - balances.thawing;
        emit LaneFundsReleased(consumer, msg.sender, amount);
    }

    /// @inheritdoc IPaymentEscrow
    function payFromLanes(address node, uint256 net, uint256 fee) external {
        _spendLaneFunds(net + fee);
        _credit(node, net, fee, _settlementSlot.accruedFees);
    }

    /// @inheritdoc IPaymentEscrow
    function withdrawEarnings(address node) external nonReentrant returns (uint256 amount) {
        address payout = _registry.payoutOf(node);
        if (payout == address(0)) revert EscrowUnknownNode(node);
        amount = _credits[node];
        if (amount == 0) revert EscrowNothingToWithdraw(node);
        _credits[node] = 0;
        emit EarningsWithdrawn(node, payout, amount);
        _paymentToken.safeTransfer(payout, amount);
    }

    /// @inheritdoc IPaymentEscrow
    function sweepFees() external nonReentrant returns (uint256 amount) {
        amount = _settlementSlot.accruedFees;
        if (amount == 0) revert EscrowZeroAmount();
        address treasury_ = _treasury;
        _settlementSlot.accruedFees = 0;
        emit FeesSwept(treasury_, amount);
        _paymentToken.safeTransfer(treasury_, amount);
    }

    /// @inheritdoc IPaymentEscrow
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert EscrowZeroAddress("treasury");
        address oldTreasury = _treasury;
        _treasury = treasury_;
        emit TreasuryUpdated(oldTreasury, treasury_);
    }

    /// @inheritdoc IPaymentEscrow
    function setThawingPeriod(uint64 thawingPeriod_) external onlyRole(PARAMETER_ROLE) {
        _checkThawingPeriod(thawingPeriod_);
        uint256 oldValue = _thawingPeriod;
        _thawingPeriod = thawingPeriod_;
        emit ParameterUpdated("thawingPeriod", oldValue, thawingPeriod_);
    }

    /// @inheritdoc IPaymentEscrow
    function accountOf(address consumer) external view returns (uint256 available, uint256 thawing, uint64 thawEndsAt) {
        Balances storage balances = _balances[consumer];
        return (balances.available, balances.thawing, _thawEndsAt[consumer]);
    }

    /// @inheritdoc IPaymentEscrow
    function availableOf(address consumer) external view returns (uint256) {
        return _balances[consumer].available;
    }

    /// @inheritdoc IPaymentEscrow
    function thawingOf(address consumer) external view returns (uint256) {
        return _balances[consumer].thawing;
    }

    /// @inheritdoc IPaymentEscrow
    function creditOf(address node) external view returns (uint256) {
        return _credits[node];
    }

    /// @inheritdoc IPaymentEscrow
    function laneFundsOf(address module) external view returns (uint256) {
        return _laneFunds[module];
    }

    /// @inheritdoc IPaymentEscrow
    function accruedFees() external view returns (uint256) {
        return _settlementSlot.accruedFees;
    }

    /// @inheritdoc IPaymentEscrow
    function paymentToken() external view returns (address) {
        return address(_paymentToken);
    }

    /// @inheritdoc IPaymentEscrow
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IPaymentEscrow
    function thawingPeriod() external view returns (uint64) {
        return _thawingPeriod;
    }

    /// @inheritdoc IPaymentEscrow
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @dev Keeps `_settlementSlot.settlement` on the SETTLEMENT_ROLE holder granted last.
    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        granted = super._grantRole(role, account);
        if (granted && role == SETTLEMENT_ROLE) _settlementSlot.settlement = account;
    }

    /// @dev A revoked (or renounced) holder leaves the cache; other holders still pass `_checkSettlement`.
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == SETTLEMENT_ROLE && _settlementSlot.settlement == account) {
            _settlementSlot.settlement = address(0);
        }
    }

    /// @dev `onlyRole(SETTLEMENT_ROLE)` with the cached holder first; anyone else gets AccessControl's
    /// own check and error.
    function _checkSettlement(address cached) private view {
        if (msg.sender != cached) _checkRole(SETTLEMENT_ROLE);
    }

    /// @dev Credits `net` to `node` and `fee` to the accrued fees (`accrued` is their current value).
    function _credit(address node, uint256 net, uint256 fee, uint96 accrued) private {
        if (net > 0) _credits[node] += net;
        if (fee > 0) {
            uint256 total = uint256(accrued) + fee;
            // 2^96 base units is 7.9e28 (79 billion tokens of 18 decimals). Reaching it reverts the
            // settlement until anyone calls `sweepFees`, which empties the counter.
            if (total > type(uint96).max) revert EscrowFeesOverflow(accrued, fee);
            _settlementSlot.accruedFees = uint96(total);
        }
        emit NodeCredited(node, net, fee);
    }

    /// @dev Takes `amount` from the calling lane module's funds; never more than it holds.
    function _spendLaneFunds(uint256 amount) private {
        uint256 funds = _laneFunds[msg.sender];
        if (funds < amount) revert EscrowInsufficientLaneFunds(msg.sender, funds, amount);
        unchecked {
            // amount <= funds.
            _laneFunds[msg.sender] = funds - amount;
        }
    }

    function _deposit(address consumer, uint256 amount) private {
        if (amount == 0) revert EscrowZeroAmount();
        // Credit what arrived, not what was asked: a fee-on-transfer token delivers less.
        uint256 before = _paymentToken.balanceOf(address(this));
        _paymentToken.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = _paymentToken.balanceOf(address(this)) - before;
        // A token that delivered nothing (100 % transfer fee) must not emit a zero deposit.
        // slither-disable-next-line incorrect-equality
        if (received == 0) revert EscrowZeroAmount();
        Balances storage balances = _balances[consumer];
        // The consumer's available + thawing must stay below 2^128 (the unchecked blocks rely on it).
        balances.available = SafeCast.toUint128(uint256(balances.available) + balances.thawing + received) - balances.thawing;
        emit Deposited(consumer, msg.sender, received);
    }

    function _checkThawingPeriod(uint64 value) private pure {
        if (value > MAX_THAWING_PERIOD) {
            revert EscrowParameterOutOfBounds("thawingPeriod", value, 0, MAX_THAWING_PERIOD);
        }
    }
}
