"""The node dashboard in a real headless Chromium, against a node with a real history on Anvil.

The figures the page renders are compared with what the chain, the receipt store and the journal say
when asked directly (events, ``channelOf``, ``creditOf``, ``claimable``, transaction receipts); the
charts must be drawn (a canvas of non-zero size with painted pixels); the settlement's transaction
link must lead to its record. Screenshots go to reports/dashboard/.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.dashboard.conftest import CAPS, TOKEN, DashboardNode
from tests.faults.proxy import Fault, FaultProxy

# Pixels of the uPlot canvas in chart container %s painted in the series' stroke colour %s (r, g, b):
# the series itself was drawn, not only the axes and grid.
_PAINTED = """(() => {
  const c = document.querySelector('#%s canvas');
  if (!c || !c.width || !c.height) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const [r, g, b] = %s;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (d[i + 3] > 200 && Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40) n++;
  return n;
})()"""
_SERIES_COLOURS = {"earnings-chart": [37, 99, 235], "traffic-chart": [21, 128, 61]}


def _raw(browser, element_id: str) -> str:
    return browser.evaluate(f"document.getElementById({element_id!r}).dataset.raw")


def _text(browser, element_id: str) -> str:
    return browser.evaluate(f"document.getElementById({element_id!r}).textContent")


def _chain_figures(node: DashboardNode) -> dict[str, int]:
    """Gross, fee, credit, unsettled, rewards claimable and gas, asked of the chain and the store directly."""
    client, w3, ledger = node.client, node.ledger.w3, node.ledger
    settled = client.contract("ReceiptSettlement").events.ReceiptSettled().get_logs(
        from_block=0, argument_filters={"node": node.node})
    escrow = client.contract("PaymentEscrow").functions
    pool = client.contract("RewardPool").functions
    channel_of = client.contract("ReceiptSettlement").functions.channelOf
    store = ledger.store(client)
    try:
        unsettled = sum(
            store.latest(ledger.signers[role].address, node.node).receipt.cumulative_amount
            - int(channel_of(ledger.signers[role].address, node.node).call()[0])
            for role in ("consumer", "consumer2")
        )
    finally:
        store.close()
    receipts = [w3.eth.get_transaction_receipt(rec.tx_hash)
                for rec in client.journal.records(client.chain_id, node=node.node) if rec.status == "mined"]
    gas = sum(r["gasUsed"] * r["effectiveGasPrice"] for r in receipts)
    return {
        "gross": sum(int(e["args"]["paid"]) for e in settled),
        "fee": sum(int(e["args"]["fee"]) for e in settled),
        "credit": int(escrow.creditOf(node.node).call()),
        "unsettled": unsettled,
        "claimable": int(pool.claimable(node.node, node.settle_epoch).call()),
        "gas": gas,
    }


def test_dashboard_shows_the_node_figures_charts_and_settlements(dashboard_node, browser, reports):
    node = dashboard_node
    url = node.serve()
    browser.navigate(url + "/")
    browser.wait_for("document.body.dataset.ready === '1'")
    expected = _chain_figures(node)
    assert expected["gross"] > 0 and expected["unsettled"] > 0 and expected["claimable"] > 0 and expected["gas"] > 0

    assert _text(browser, "node") == node.node
    assert _text(browser, "relay-state") == "relay running"
    assert _raw(browser, "gross") == str(expected["gross"])
    assert _raw(browser, "fee") == str(expected["fee"])
    assert _raw(browser, "net") == str(expected["gross"] - expected["fee"])
    assert _raw(browser, "credit") == str(expected["credit"]) == str(expected["gross"] - expected["fee"])
    assert _raw(browser, "unsettled") == str(expected["unsettled"])
    assert _raw(browser, "rewards-claimable") == str(expected["claimable"])
    assert _raw(browser, "gas") == str(expected["gas"])
    # The mock stablecoin has 6 decimals: the text is the exact amount with the token's symbol.
    gross, symbol = expected["gross"], node.client.contract("PaymentToken").functions.symbol().call()
    assert _text(browser, "gross") == f"{gross // 10**6:,}.{gross % 10**6:06d}".rstrip("0").rstrip(".") + " " + symbol
    # Both sessions' bytes (request and response, as the consumers counted them) are today's and this month's.
    carried = sum(node.delivered.values())
    assert _raw(browser, "today-bytes") == _raw(browser, "month-bytes") == str(carried)
    assert _raw(browser, "today-quota") == str(CAPS.per_day_bytes)
    assert _raw(browser, "month-quota") == str(CAPS.per_month_bytes)
    assert _raw(browser, "sessions-total") == "2" and _raw(browser, "sessions-active") == "0"

    # The traffic chart's data: every receipted byte of both channels, counted once.
    traffic = browser.evaluate("fetch('/api/traffic').then(r => r.json())")
    store = node.ledger.store(node.client)
    try:
        receipted = sum(store.latest(node.ledger.signers[r].address, node.node).receipt.cumulative_bytes
                        for r in ("consumer", "consumer2"))
    finally:
        store.close()
    assert traffic["totalBytes"] == str(receipted) and sum(p["bytes"] for p in traffic["points"]) == receipted
    for chart, colour in _SERIES_COLOURS.items():
        size = browser.evaluate(f"(() => {{ const c = document.querySelector('#{chart} canvas'); "
                                "return c ? [c.width, c.height] : null; })()")
        assert size is not None and size[0] > 0 and size[1] > 0, (chart, size)
        assert browser.evaluate(_PAINTED % (chart, colour)) > 100, chart

    settle = [r for r in node.client.journal.records(node.client.chain_id, node=node.node) if r.kind == "settle"]
    assert len(settle) == 1
    rows = browser.evaluate("""[...document.querySelectorAll('#settlements tbody tr')].map(r => ({
        batch: r.dataset.batch, state: r.cells[1].textContent, paid: r.cells[4].dataset.raw,
        gas: r.cells[7].dataset.raw, href: r.querySelector('a') && r.querySelector('a').getAttribute('href')}))""")
    assert len(rows) == 1
    receipt = node.ledger.w3.eth.get_transaction_receipt(settle[0].tx_hash)
    assert rows[0]["state"] == "confirmed" and rows[0]["paid"] == str(expected["gross"])
    assert rows[0]["gas"] == str(receipt["gasUsed"] * receipt["effectiveGasPrice"])
    assert rows[0]["href"] == f"/api/tx/{settle[0].tx_hash}"
    record = browser.evaluate(f"fetch({rows[0]['href']!r}).then(r => r.json())")
    assert record["txHash"] == settle[0].tx_hash and record["status"] == "mined"
    assert record["blockNumber"] == receipt["blockNumber"]
    assert not [line for line in browser.console if line.startswith("exception")], browser.console
    browser.screenshot(reports / "dashboard.png")


def _status_code(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            json.load(answer)
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_dashboard_with_a_token_refuses_its_api_without_it(dashboard_node, browser, reports):
    url = dashboard_node.serve(token=TOKEN)
    for api in ("status", "traffic", "earnings", "settlements"):
        assert _status_code(f"{url}/api/{api}", None) == 401
        assert _status_code(f"{url}/api/{api}", "wrong-token-wrong-token-wrong") == 401
        assert _status_code(f"{url}/api/{api}", TOKEN) == 200

    browser.navigate(url + "/")
    browser.wait_for("document.body.dataset.auth === 'required'")
    assert browser.evaluate("!document.getElementById('token-form').hidden")
    assert _raw(browser, "gross") == "" and _text(browser, "node") == "…"
    browser.screenshot(reports / "dashboard-locked.png")

    # The token in the fragment never reaches the server; the page uses it and drops it from the address.
    browser.navigate(url + "/#token=" + TOKEN)
    browser.wait_for("document.body.dataset.ready === '1'")
    assert _text(browser, "node") == dashboard_node.node
    assert _raw(browser, "gross") != ""
    assert TOKEN not in browser.evaluate("location.href")


def test_a_failing_chain_read_is_shown_and_the_store_figures_stay(dashboard_node, browser, rpc_url):
    node = dashboard_node
    with FaultProxy(rpc_url, hold=0) as proxy:
        url = node.serve(rpc_url=proxy.url)
        browser.navigate(url + "/")
        browser.wait_for("document.body.dataset.ready === '1'")
        assert _raw(browser, "gross") != "" and browser.evaluate("document.getElementById('error').hidden")
        # The provider answers the earnings' first read (the node's registry record) with a 503, and
        # the dashboard's client does not retry: the API names the failed read instead of old figures.
        proxy.arm(Fault("eth_call", "http503"))
        assert _status_code(url + "/api/earnings", None) == 503
        proxy.arm(Fault("eth_call", "http503"))
        browser.navigate(url + "/")
        browser.wait_for("document.body.dataset.problems === '1'")
        assert proxy.injected["http503"] == 2
    error = _text(browser, "error")
    assert error.startswith("earnings: ") and proxy.url in error and "unreachable" in error, error
    assert browser.evaluate("!document.getElementById('error').hidden")
    assert _raw(browser, "unsettled") != "" and _raw(browser, "today-bytes") == str(sum(node.delivered.values()))
    assert _raw(browser, "gross") == ""
    assert browser.evaluate("document.querySelectorAll('#settlements tbody tr[data-batch]').length") == 1
