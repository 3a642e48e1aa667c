// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IReceiptSettlement} from "./interfaces/IReceiptSettlement.sol";
import {IReceiptSettlementV2} from "./interfaces/IReceiptSettlementV2.sol";
import {ReceiptSettlement} from "./ReceiptSettlement.sol";

/// @title ReceiptSettlementV2
/// @notice ReceiptSettlement that takes over from a predecessor module: same receipts, checks, events and
/// payouts; channel state is read through to the predecessor until this module first writes the channel.
/// @dev Read-through is exact because settlement only moves a channel forward: the first write here
/// starts from the predecessor's (settledAmount, settledBytes) and leaves both at least as large, so a
/// slot that is still (0, 0) here is one this module never wrote (or one the predecessor also left at
/// (0, 0)), and a written slot supersedes the predecessor's for good. Chains of successors read through
/// transitively. Receipts are signed for this module's EIP-712 domain (its own verifyingContract), so a
/// signature made for the predecessor never verifies here.
contract ReceiptSettlementV2 is ReceiptSettlement, IReceiptSettlementV2 {
    IReceiptSettlement private immutable _predecessor;

    /// @param predecessor_ The retired module; must settle against the same `escrow_`.
    constructor(
        address admin,
        address escrow_,
        address registry_,
        address rewardPool_,
        uint16 feeBps_,
        address predecessor_
    ) ReceiptSettlement(admin, escrow_, registry_, rewardPool_, feeBps_) {
        if (predecessor_ == address(0)) revert SettlementZeroAddress("predecessor");
        address predecessorEscrow = IReceiptSettlement(predecessor_).escrow();
        if (predecessorEscrow != escrow_) {
            revert SettlementPredecessorMismatch(predecessor_, predecessorEscrow, escrow_);
        }
        _predecessor = IReceiptSettlement(predecessor_);
    }

    /// @inheritdoc IReceiptSettlementV2
    function predecessor() external view returns (address) {
        return address(_predecessor);
    }

    /// @dev One external view call per channel until this module writes it; none after.
    function _settledOf(Channel storage channel, address consumer, address node)
        internal
        view
        override
        returns (uint256 settledAmount, uint256 settledBytes)
    {
        (settledAmount, settledBytes) = super._settledOf(channel, consumer, node);
        if (settledAmount == 0 && settledBytes == 0) {
            (settledAmount, settledBytes) = _predecessor.channelOf(consumer, node);
        }
    }
}
