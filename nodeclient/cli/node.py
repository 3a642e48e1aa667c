"""``kuota node register|update|rotate-key|exit|status|withdraw-earnings``.

A node is identified by its node key's address, a keystore separate from the operator's wallet: the
operator's account pays and owns, the node key signs only (the relay's handshake and the
registration proof ``NodeKey(node, key, operator)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from nodeclient._utils.values import BadValueError, format_amount, parse_address, parse_amount, parse_uint
from nodeclient.cli.options import CliContext, account_command, node_key_options, ops, spend_command, table
from nodeclient.discovery.metadata import (
    build_metadata,
    check_metadata_uri,
    encode_metadata_uri,
    read_metadata_uri,
)
from nodeclient.errors import InsufficientFundsError, RefusedError

__all__ = ["COMMANDS", "node"]

_UINT96_MAX = 2**96 - 1


@click.group()
def node() -> None:
    """Register, update and inspect your nodes."""


def _price(cx: CliContext, text: str | None, units: bool) -> int | None:
    if text is None:
        return None
    info = ops().token_info(cx.client(), "PaymentToken", cx.client().deployment.address("PaymentEscrow"))
    return parse_amount("price per GiB", text, 0 if units else info.decimals, maximum=_UINT96_MAX, allow_zero=True)


def _node_address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    return parse_address("node", value)


# NODE, checked and checksummed before the command runs.
_node_argument = click.argument("node_address", metavar="NODE", callback=_node_address)

_relay_option = click.option(
    "--relay", "relays", multiple=True, metavar="HOST:PORT",
    help="Public relay endpoint (repeatable): published in an inline metadata document (docs/PROTOCOL.md).",
)
_bundles_option = click.option("--bundles", default=None, help="URL of the node's receipt bundles, for the metadata document.")


def _metadata_for(relays: tuple[str, ...], bundles: str | None, uri: str | None, region: str, price: int) -> str | None:
    """The metadataURI to write: an inline document built from --relay, or --metadata-uri checked.

    None when neither is given. Every value is checked before any transaction is built.
    """
    if relays:
        if uri is not None:
            raise BadValueError("--metadata-uri", uri, "give --relay (an inline document is built from it) or --metadata-uri, not both")
        return encode_metadata_uri(build_metadata(list(relays), region=region, price_per_gib=price, bundles=bundles))
    if bundles is not None:
        raise BadValueError("--bundles", bundles, "is published in the metadata document, which --relay builds; give --relay too")
    if uri is not None:
        check_metadata_uri(uri, region=region, price_per_gib=price)
    return uri


def _updated_metadata(current: Any, relays: tuple[str, ...], bundles: str | None, uri: str | None, region: str, price: int) -> str:
    """update's metadataURI: as given, or the current inline document rewritten with the new figures.

    Fields of the current document that are not replaced (its relays, its bundles URL) are kept.
    """
    if uri is not None:
        return _metadata_for(relays, bundles, uri, region, price) or uri
    document = read_metadata_uri(current.metadata_uri).metadata
    if not relays and (document is None or not document.relay):
        if bundles is not None:
            raise BadValueError("--bundles", bundles, "the node has no inline metadata document to add it to; give --relay too")
        return str(current.metadata_uri)
    # Keep the published document in step with the registry's region and price.
    kept_bundles = document.bundles if document is not None else None
    return encode_metadata_uri(
        build_metadata(list(relays) or [str(e) for e in document.relay], region=region, price_per_gib=price,  # type: ignore[union-attr]
                       bundles=bundles if bundles is not None else kept_bundles)
    )


def _check_operator(cx: CliContext, node_address: str, account: str) -> Any:
    info = ops().get_node(cx.client(), node_address)
    if info.operator != account:
        raise ops().NotNodeOperatorError(node_address, account, info.operator)
    return info


@node.command("register")
@node_key_options
@click.option("--payout", default=None, help="Address paid for settlements and rewards (default: your account).")
@click.option("--price", required=True, help="Advertised price per GiB, in payment tokens (e.g. 0.5).")
@click.option("--price-units", is_flag=True, help="--price is in base units.")
@click.option("--capacity", "capacity", required=True, help="Declared capacity, Mbps.")
@click.option("--region", required=True, help="Region label, e.g. eu-west.")
@_relay_option
@_bundles_option
@click.option("--metadata-uri", default=None, help="URI of the node's metadata document (instead of --relay).")
@spend_command
def register(
    cx: CliContext,
    node_account: str | None,
    node_keystore: Path | None,
    node_password_file: Path | None,
    payout: str | None,
    price: str,
    price_units: bool,
    capacity: str,
    region: str,
    relays: tuple[str, ...],
    bundles: str | None,
    metadata_uri: str | None,
) -> None:
    """Register a node whose key is --node-account, operated (and paid for) by --account."""
    capacity_mbps = parse_uint("capacity", capacity, 64, allow_zero=False)
    price_units_value = _price(cx, price, price_units)
    assert price_units_value is not None  # --price is required
    metadata_uri = _metadata_for(relays, bundles, metadata_uri, region, price_units_value) or ""
    client = cx.client()
    operator = cx.signer()
    payout_address = parse_address("payout", payout) if payout else operator.address
    node_signer = cx.node_signer(node_account, node_keystore, node_password_file)
    if node_signer.address == operator.address:
        raise RefusedError("the node key must be a different account than the operator's wallet")
    stake = ops().stake_info(client, operator.address)
    min_stake = int(client.call(client.contract("NodeRegistry").functions.minStakePerNode(), "minStakePerNode()"))
    if stake.bonded < stake.required + min_stake:
        raise InsufficientFundsError(
            f"operator {operator.address} has {stake.bonded} base units of KUOTA bonded; another node needs "
            f"{stake.required + min_stake} (minStakePerNode {min_stake} × nodes); run `kuota stake add` first"
        )
    signature = ops().sign_node_key(client, node_signer, node_signer.address, operator.address)
    call = client.contract("NodeRegistry").functions.register(
        node_signer.address, payout_address, price_units_value, capacity_mbps, region, metadata_uri, signature
    )
    result = cx.send(operator, call, f"register node {node_signer.address}", kind="register", node=node_signer.address)
    info = ops().get_node(client, node_signer.address)
    cx.emit(
        {"tx": result.to_json(), "node": info.to_json()},
        lambda c: c.print(f"registered node [bold]{info.node}[/bold] (status {info.status}, payout {info.payout}) in {result.tx_hash}"),
    )


@node.command("update")
@_node_argument
@click.option("--payout", default=None, help="New payout address.")
@click.option("--price", default=None, help="New price per GiB, in payment tokens.")
@click.option("--price-units", is_flag=True, help="--price is in base units.")
@click.option("--capacity", default=None, help="New capacity, Mbps.")
@click.option("--region", default=None, help="New region label.")
@_relay_option
@_bundles_option
@click.option("--metadata-uri", default=None, help="New metadata URI (instead of --relay).")
@spend_command
def update(
    cx: CliContext,
    node_address: str,
    payout: str | None,
    price: str | None,
    price_units: bool,
    capacity: str | None,
    region: str | None,
    relays: tuple[str, ...],
    bundles: str | None,
    metadata_uri: str | None,
) -> None:
    """Change NODE's payout, price, capacity, region or metadata (fields not given stay).

    An inline metadata document is rewritten with the new region and price, so it never contradicts
    the registry; --relay replaces its endpoints.
    """
    new_price = _price(cx, price, price_units)
    new_capacity = parse_uint("capacity", capacity, 64, allow_zero=False) if capacity is not None else None
    new_payout = parse_address("payout", payout) if payout is not None else None
    client = cx.client()
    current = ops().get_node(client, node_address)
    price_value = current.price_per_gib if new_price is None else new_price
    region_value = current.region if region is None else region
    # Checked before the keystore is unlocked: a typo in --relay costs no password prompt.
    new_metadata = _updated_metadata(current, relays, bundles, metadata_uri, region_value, price_value)
    signer = cx.signer()
    _check_operator(cx, node_address, signer.address)
    call = client.contract("NodeRegistry").functions.update(
        node_address,
        new_payout or current.payout,
        price_value,
        current.capacity_mbps if new_capacity is None else new_capacity,
        region_value,
        new_metadata,
    )
    result = cx.send(signer, call, f"update node {node_address}", kind="update", node=node_address)
    info = ops().get_node(client, node_address)
    cx.emit({"tx": result.to_json(), "node": info.to_json()}, lambda c: c.print(f"updated node {node_address} in {result.tx_hash}"))


@node.command("rotate-key")
@_node_argument
@node_key_options
@spend_command
def rotate_key(
    cx: CliContext, node_address: str, node_account: str | None, node_keystore: Path | None, node_password_file: Path | None
) -> None:
    """Make --node-account the signing key of NODE (the node keeps its address)."""
    client = cx.client()
    signer = cx.signer()
    _check_operator(cx, node_address, signer.address)
    new_key = cx.node_signer(node_account, node_keystore, node_password_file)
    signature = ops().sign_node_key(client, new_key, node_address, signer.address)
    call = client.contract("NodeRegistry").functions.rotateKey(node_address, new_key.address, signature)
    result = cx.send(signer, call, f"rotate key of node {node_address} to {new_key.address}", kind="rotate", node=node_address)
    cx.emit({"tx": result.to_json(), "node": node_address, "newKey": new_key.address},
            lambda c: c.print(f"node {node_address} now signs with {new_key.address} ({result.tx_hash})"))


@node.command("exit")
@_node_argument
@spend_command
def exit_(cx: CliContext, node_address: str) -> None:
    """Request NODE's exit (its stake requirement is released; pending receipts still settle)."""
    client, signer = cx.client(), cx.signer()
    _check_operator(cx, node_address, signer.address)
    result = cx.send(signer, client.contract("NodeRegistry").functions.requestExit(node_address), f"exit node {node_address}", kind="exit", node=node_address)
    cx.emit({"tx": result.to_json(), "node": ops().get_node(client, node_address).to_json()},
            lambda c: c.print(f"node {node_address} is exiting ({result.tx_hash})"))


@node.command("withdraw-earnings")
@_node_argument
@spend_command
def withdraw_earnings(cx: CliContext, node_address: str) -> None:
    """Pay NODE's escrow credit (net settlements) to its payout address."""
    info = ops().get_node(cx.client(), node_address)
    client = cx.client()
    if info.credit == 0:
        raise RefusedError(f"node {node_address} has no credit to withdraw")
    signer = cx.signer()
    call = client.contract("PaymentEscrow").functions.withdrawEarnings(node_address)
    result = cx.send(signer, call, f"withdraw {info.credit} base units of earnings of node {node_address}", kind="withdraw-earnings", node=node_address)
    cx.emit({"tx": result.to_json(), "node": node_address, "amount": info.credit, "payout": info.payout},
            lambda c: c.print(f"paid {info.credit} base units to {info.payout} ({result.tx_hash})"))


@node.command("status")
@click.argument("nodes", nargs=-1, metavar="[NODE]...")
@account_command
def status(cx: CliContext, nodes: tuple[str, ...]) -> None:
    """Show NODEs (default: every node of your account)."""
    client = cx.client()
    if nodes:
        addresses = [parse_address("node", n) for n in nodes]
    else:
        operator = cx.account_info().address
        addresses = list(client.call(client.contract("NodeRegistry").functions.nodesOf(operator), "nodesOf()"))
    infos = [ops().get_node(client, a) for a in addresses]
    token = ops().token_info(client, "PaymentToken", client.deployment.address("PaymentEscrow"))

    def human(c):  # type: ignore[no-untyped-def]
        if not infos:
            c.print("no nodes; register one with `kuota node register`")
            return
        rows = [
            [i.node, i.status, i.payout, format_amount(i.price_per_gib, token.decimals, token.symbol), i.capacity_mbps, i.region,
             format_amount(i.credit, token.decimals, token.symbol)]
            for i in infos
        ]
        c.print(table("Nodes", ["node", "status", "payout", "price/GiB", "Mbps", "region", "credit"], rows))

    cx.emit({"nodes": [i.to_json() for i in infos]}, human)


COMMANDS = [node]
