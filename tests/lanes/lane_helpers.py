"""Helpers for the lane tests: packing test receipts, and the escrow's conservation check."""

from __future__ import annotations

from nodeclient.receipts.packing import pack_receipt_args

__all__ = ["CLOSE_DELAY", "escrow_conservation", "lane_view", "packed"]

#: The lane module's close delay in these tests (LaneSettlement.MIN_CLOSE_DELAY).
CLOSE_DELAY = 600


def packed(signed_list) -> bytes:
    """The client's packing of test receipts."""
    return b"".join(pack_receipt_args(s.args, s.signature) for s in signed_list)


def escrow_conservation(system, consumers, nodes) -> None:
    """Token balance of the escrow == Σ available + Σ thawing + lane funds + Σ credits + fees, and the
    lane funds the escrow books for the module == Σ lane balances (over the accounts that ever held any)."""
    escrow, lanes = system.escrow, system.lanes
    held = sum(sum(escrow.accountOf(c)[:2]) for c in consumers)
    credits = sum(escrow.creditOf(n) for n in nodes)
    lane_funds = escrow.laneFundsOf(lanes)
    assert system.payment_token.balanceOf(escrow) == held + lane_funds + credits + escrow.accruedFees()
    assert lane_funds == sum(lanes.laneOf(c, n)[0][0] for c in consumers for n in nodes)



def lane_view(world):
    """A relay chain view of the test chain reading the test node's lanes (closed with the world's views)."""
    from nodeclient.chain.rpc import connect_async
    from nodeclient.relay.chainview import Web3ChainView

    view = Web3ChainView(
        connect_async(world.rpc_url), world.chain_id, world.manifest["contracts"], lane_node=world.node.address
    )
    world.views.append(view)
    return view
