// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IReceiptSettlement} from "./IReceiptSettlement.sol";

/// @title IReceiptSettlementV2
/// @notice A settlement module that replaces another one over the same escrow and reward pool without
/// migrating channel state: a channel it has never written is read from the predecessor, so a receipt
/// settled under the predecessor is stale here, and whatever was settled there is never paid twice.
/// The replacement is safe only if the predecessor is retired (its SETTLEMENT_ROLE in the escrow and
/// the reward pool revoked) in the same transaction that grants those roles to this module:
/// `scripts/migrate_settlement.py` builds that governance proposal.
interface IReceiptSettlementV2 is IReceiptSettlement {
    /// @notice `predecessor` settles against escrow `predecessorEscrow`, not this module's `escrow`.
    error SettlementPredecessorMismatch(address predecessor, address predecessorEscrow, address escrow);

    /// @notice The module this one replaced; channels not yet written here are read from it.
    function predecessor() external view returns (address);
}
