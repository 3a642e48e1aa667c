"""``kuota node serve`` (the metered relay) and ``kuota consume fetch|tunnel`` (its paying client).

Thin layer: options are parsed here, everything else is ``nodeclient.relay``. The node key (the
registry's signing key) signs handshakes; the ``--account`` wallet pays gas for background
settlement; the consumer's ``--account`` signs receipts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from nodeclient.cli.nodes import choice_options, discover, node_filter
from nodeclient.cli.options import (
    CliContext,
    account_options,
    json_option,
    network_options,
    node_key_options,
    pass_cx,
)
from nodeclient.errors import NotFoundError

__all__ = ["COMMANDS", "NODE_COMMANDS", "consume", "serve"]

_MIB = 1024 * 1024
_GIB = 1024 * _MIB

log = logging.getLogger("kuota.relay.cli")


def _host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint=what)
    return host.strip("[]"), int(port)


def _mib(value: float | None, unit: int) -> int | None:
    return None if value is None else int(value * unit)


_SERVE_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--node", "node_address"), {"default": None, "help": "Node address in the registry (default: the node key's address)."}),
    (("--host",), {"default": "0.0.0.0", "show_default": True, "help": "Address to listen on."}),
    (("--port",), {"default": 7447, "show_default": True, "type": click.IntRange(0, 65535), "help": "Port to listen on."}),
    (("--credit-kib",), {"default": 16384, "show_default": True, "type": click.IntRange(64),
                         "help": "Most unpaid KiB per session (the node's exposure)."}),
    (("--receipt-kib",), {"default": 4096, "show_default": True, "type": click.IntRange(16),
                          "help": "Consumers sign at least every this many KiB."}),
    (("--max-sessions",), {"default": 64, "show_default": True, "type": click.IntRange(1)}),
    (("--max-streams",), {"default": 32, "show_default": True, "type": click.IntRange(1), "help": "TCP streams per session."}),
    (("--rate-mbit",), {"type": click.FloatRange(min=0.1), "default": None,
                        "help": "Cap the relay's total rate (Mbit/s), leaving the rest of the link to you."}),
    (("--session-cap-mib",), {"type": click.FloatRange(min=1), "default": None, "help": "Most MiB one session may carry."}),
    (("--daily-cap-gib",), {"type": click.FloatRange(min=0.001), "default": None, "help": "Most GiB per UTC day (persisted)."}),
    (("--monthly-quota-gib",), {"type": click.FloatRange(min=0.001), "default": None,
                                "help": "Most GiB per UTC month (persisted): your leftover quota."}),
    (("--idle-timeout",), {"default": 120.0, "show_default": True, "type": click.FloatRange(min=1),
                           "help": "Seconds without a frame before a session is dropped."}),
    (("--pause-timeout",), {"default": 15.0, "show_default": True, "type": click.FloatRange(min=0.5),
                            "help": "Seconds a paused consumer has to sign."}),
    (("--allow-private-targets",), {"is_flag": True, "help": "Allow destinations in private/loopback ranges (never on a home LAN)."}),
    (("--allow-port", "allow_ports"), {"multiple": True, "type": click.IntRange(1, 65535),
                                       "help": "Only these destination ports (repeatable)."}),
    (("--settle/--no-settle",), {"default": True, "show_default": True,
                                 "help": "Settle in the background with the gas-aware policy (needs --account)."}),
    (("--settle-interval",), {"default": 300.0, "show_default": True, "type": click.FloatRange(min=1),
                              "help": "Seconds between settlement checks."}),
    (("--status-file",), {"type": click.Path(path_type=Path, dir_okay=False), "default": None,
                          "help": "Status snapshot file (default: in the data dir)."}),
    (("--ready-file",), {"type": click.Path(path_type=Path, dir_okay=False), "default": None,
                         "help": "Write 'host port pid' here once listening."}),
    (("--stats", "show_stats"), {"is_flag": True, "help": "Print the status snapshot of the running relay and exit."}),
    (("--web/--no-web", "web_enabled"), {"default": None,
                                         "help": "Run the HTTP service (/metrics, /bundles/) beside the relay "
                                                 "(default: the config's web.enabled, on)."}),
    (("--web-host",), {"default": None, "help": "Address of the HTTP service (default: web.host, 127.0.0.1; "
                                                "any other address needs web.token_file or KUOTA_WEB__TOKEN)."}),
    (("--web-port",), {"default": None, "type": click.IntRange(0, 65535), "help": "Port of the HTTP service (default: web.port, 7448)."}),
]


def _serve_options(fn: Any) -> Any:
    # Applied last-first so that --help lists them in the order of the table.
    for decls, attrs in reversed(_SERVE_OPTIONS):
        fn = click.option(*decls, **attrs)(fn)
    return fn


@click.command("serve")
@network_options
@account_options
@node_key_options
@_serve_options
@json_option
@pass_cx
def serve(cx: CliContext, **opts: Any) -> None:
    """Run the metered relay: carry consumers' traffic for signed receipts, settle in the background."""
    from nodeclient.relay.stats import read_snapshot

    settings = cx.settings()
    status_file = opts["status_file"] or settings.data_dir / "relay" / "status.json"
    if opts["show_stats"]:
        try:
            snapshot = read_snapshot(status_file)
        except FileNotFoundError:
            raise NotFoundError(
                f"no relay status file at {status_file}; is `kuota node serve` running?"
            ) from None
        cx.emit(snapshot, lambda c: c.print(json.dumps(snapshot, indent=2, sort_keys=True)))
        return
    asyncio.run(_serve(cx, status_file, opts))


def _relay_config(opts: dict[str, Any], status_file: Path) -> Any:
    """The relay's configuration from ``serve``'s options (KiB, MiB, GiB and Mbit/s to bytes)."""
    from nodeclient.relay.limits import Caps
    from nodeclient.relay.server import RelayConfig
    from nodeclient.relay.targets import TargetPolicy

    return RelayConfig(
        host=opts["host"],
        port=opts["port"],
        credit_bytes=opts["credit_kib"] * 1024,
        receipt_interval_bytes=min(opts["receipt_kib"], opts["credit_kib"]) * 1024,
        max_sessions=opts["max_sessions"],
        max_streams_per_session=opts["max_streams"],
        idle_timeout=opts["idle_timeout"],
        pause_timeout=opts["pause_timeout"],
        rate_bytes_per_s=opts["rate_mbit"] * 1_000_000 / 8 if opts["rate_mbit"] else None,
        caps=Caps(
            per_session_bytes=_mib(opts["session_cap_mib"], _MIB),
            per_day_bytes=_mib(opts["daily_cap_gib"], _GIB),
            per_month_bytes=_mib(opts["monthly_quota_gib"], _GIB),
        ),
        targets=TargetPolicy(
            allow_private=opts["allow_private_targets"],
            allowed_ports=frozenset(opts["allow_ports"]) if opts["allow_ports"] else None,
        ),
        stats_path=status_file,
    )


async def _serve(cx: CliContext, status_file: Path, opts: dict[str, Any]) -> None:
    from eth_utils import is_address, to_checksum_address

    from nodeclient.relay.daemon import run_node

    settings = cx.settings()
    web = _web_config(settings, opts)
    client = cx.client()
    node_key = cx.node_signer(opts["node_account"], opts["node_keystore"], opts["node_password_file"])
    if opts["node_address"] is not None and not is_address(opts["node_address"]):
        raise click.BadParameter(f"{opts['node_address']!r} is not an address", param_hint="--node")
    node = to_checksum_address(opts["node_address"] or node_key.address)
    settle_signer = cx.signer() if opts["settle"] else None
    config = _relay_config(opts, status_file)
    cx.note(f"relay for node {node} starting on {config.host}:{config.port} (status file {status_file})")
    if web is not None:
        cx.note(f"HTTP service (/metrics, /bundles/) on {web.host}:{web.port}")
    await run_node(
        client,
        node_key,
        node,
        config,
        settings.data_dir,
        settle_signer=settle_signer,
        policy=settings.settlement,
        settle_interval=opts["settle_interval"],
        ready_file=opts["ready_file"],
        web=web,
        module=settings.settlement.module,
    )


def _web_config(settings: Any, opts: dict[str, Any]) -> Any:
    """The checked HTTP service config (None when off); also opens the rotating log file if configured.

    Checked before anything connects: a non-loopback address without a token refuses to start.
    """
    from nodeclient._utils.logfile import add_rotating_log
    from nodeclient.web.config import resolve_web_config

    enabled = settings.web.enabled if opts["web_enabled"] is None else opts["web_enabled"]
    web = resolve_web_config(settings.web, host=opts["web_host"], port=opts["web_port"]) if enabled else None
    if settings.log_file is not None:
        add_rotating_log(settings.log_file, max_bytes=settings.log_max_bytes, backups=settings.log_backups)
    return web


@click.group()
def consume() -> None:
    """Use a node's bandwidth: fetch URLs or tunnel TCP through its metered relay, paying per byte."""


def _consumer_options(fn: Any) -> Any:
    fn = choice_options(fn)
    fn = click.option(
        "--max-spend",
        type=click.IntRange(0),
        default=None,
        help="Sign receipts for at most this many payment-token base units in this session.",
    )(fn)
    fn = click.option("--relay", "relay_addr", default=None,
                      help="The node's relay address, HOST:PORT (default: the best endpoint it publishes).")(fn)
    fn = click.option("--node", "node_address", default=None,
                      help="The node's registry address (default: picked by --policy among eligible nodes).")(fn)
    return fn


async def _choose(cx: CliContext, opts: dict[str, Any]) -> tuple[str, str, int, dict[str, Any] | None]:
    """(node, host, port, pick): as given, or the node --policy picks and its best endpoint.

    With --node alone the node's published endpoints are probed and the best one used; with neither,
    every registered node is listed, probed and ranked. Jailed, exiting, under-staked, unpublished and
    unreachable nodes are skipped, each with its reason.
    """
    from eth_utils import is_address, to_checksum_address

    from nodeclient.discovery.catalog import NodeFilter, pick_node

    if opts["node_address"] is not None and not is_address(opts["node_address"]):
        raise click.BadParameter(f"{opts['node_address']!r} is not an address", param_hint="--node")
    if opts["relay_addr"] is not None:
        if opts["node_address"] is None:
            raise click.BadParameter(f"--relay {opts['relay_addr']} needs --node: the relay proves which node it is",
                                     param_hint="--relay")
        host, port = _host_port(opts["relay_addr"], "--relay")
        return to_checksum_address(opts["node_address"]), host, port, None
    given = [to_checksum_address(opts["node_address"])] if opts["node_address"] else None
    listings = await discover(cx, opts, given)
    if given and not listings:
        raise NotFoundError(f"node {given[0]} is not registered")
    # A node the consumer named is judged only on eligibility and price, not on the ranking filters.
    accept = NodeFilter(max_price=opts["max_price"]) if given else node_filter(opts)
    pick = pick_node(listings, opts["policy"], accept)
    for node, why in pick.skipped:
        cx.note(f"skipped node {node}: {why}")
    if pick.chosen is None or pick.chosen.best is None:
        raise NotFoundError(
            f"{pick.reason}: " + ("; ".join(f"{node}: {why}" for node, why in pick.skipped) or "none registered")
        )
    endpoint = pick.chosen.best.endpoint
    cx.note(f"picked node {pick.chosen.node} at {endpoint}: {pick.reason}")
    return pick.chosen.node, endpoint.host, endpoint.port, pick.to_json()


async def _open(cx: CliContext, opts: dict[str, Any]) -> Any:
    from nodeclient.relay.chainview import Web3ChainView
    from nodeclient.relay.client import ConsumerConfig, open_session

    node, host, port, opts["picked"] = await _choose(cx, opts)
    client = cx.client()
    signer = cx.signer()
    # A node settling through lanes signs its challenge for LaneSettlement: so must this consumer.
    lane_node = opts["node_address"] if cx.settings().settlement.module == "lanes" else None
    view = await Web3ChainView.connect(
        client.profile.rpc_url, dict(client.deployment.contracts), client.chain_id, lane_node=lane_node
    )
    config = replace(ConsumerConfig(), max_price_per_gib=opts["max_price"], max_spend=opts["max_spend"])
    try:
        return await open_session(
            host,
            port,
            node=node,
            consumer_key=signer.private_key_bytes(),
            chain=view,
            config=config,
        )
    except BaseException:
        await view.close()
        raise


@consume.command("fetch")
@network_options
@account_options
@_consumer_options
@click.argument("url")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the body here (default: stdout, unless --json).",
)
@json_option
@pass_cx
def fetch(cx: CliContext, url: str, output: Path | None, **opts: Any) -> None:
    """GET an http:// URL through the node; sign receipts for the bytes received."""

    sink_file = open(output, "wb") if output is not None else None  # noqa: SIM115 - closed after the run
    out = sys.stdout.buffer

    async def run() -> dict[str, Any]:
        session = await _open(cx, opts)

        def sink(data: bytes) -> None:
            if sink_file is not None:
                sink_file.write(data)
            elif not cx.as_json:
                out.write(data)

        try:
            result = await session.fetch(url, sink=sink)
        finally:
            await session.close()
            await session.chain.close()
        return {
            "url": url,
            "status": result.status,
            "bodyBytes": result.body_bytes,
            "seconds": round(result.seconds, 3),
            "picked": opts["picked"],
            **session.summary(),
        }

    try:
        summary = asyncio.run(run())
    finally:
        if sink_file is not None:
            sink_file.close()
    if cx.as_json:
        cx.emit(summary)
    else:
        cx.note(
            f"{summary['status']} {summary['bodyBytes']} body bytes; paid for {summary['signedBytes']} bytes "
            f"({summary['spent']} units at {summary['pricePerGiB']}/GiB), {summary['receipts']} receipts, "
            f"latency {summary['latencyMs']} ms"
        )


@consume.command("tunnel")
@network_options
@account_options
@_consumer_options
@click.option("--listen", default="127.0.0.1:8118", show_default=True, help="Local HOST:PORT of the proxy.")
@click.option(
    "--to",
    "forward_to",
    default=None,
    help="Forward every connection to this HOST:PORT (else act as HTTP CONNECT / SOCKS5 proxy).",
)
@click.option("--duration", type=click.FloatRange(min=1), default=None, help="Stop after this many seconds.")
@json_option
@pass_cx
def tunnel(cx: CliContext, listen: str, forward_to: str | None, duration: float | None, **opts: Any) -> None:
    """Open a local proxy (HTTP CONNECT + SOCKS5, or a fixed TCP forward) over a paid session."""
    from nodeclient.relay.gateway import Gateway

    host, port = _host_port(listen, "--listen")
    target = _host_port(forward_to, "--to") if forward_to else None

    async def run() -> dict[str, Any]:
        session = await _open(cx, opts)
        gateway = Gateway(session, forward_to=target)
        bound = await gateway.start(host, port)
        cx.note(f"proxy on {bound[0]}:{bound[1]} → node {session.node} (Ctrl-C to stop)")
        try:
            waiter = asyncio.get_running_loop().create_future()
            with_timeout = asyncio.wait_for(waiter, duration) if duration else waiter
            try:
                await with_timeout
            except (TimeoutError, asyncio.CancelledError):
                pass
        finally:
            await gateway.close()
            await session.close()
            await session.chain.close()
        return {"connections": gateway.connections, "picked": opts["picked"], **session.summary()}

    try:
        summary = asyncio.run(run())
    except KeyboardInterrupt:
        return
    cx.emit(summary)


NODE_COMMANDS = [serve]
COMMANDS = [consume]
