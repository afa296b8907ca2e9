"""Drive `catalog serve` in a real Chromium: every page loads, nodes hover and click, the edge
slider works, compare highlights, and the numbers on screen are the ones `--json` gives."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def api(base: str, path: str) -> object:
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read())


def test_list_filters_and_search(server, page) -> None:
    rows = api(server, "/api/circuits")
    page.goto(server + "/")
    page.wait_for_selector("#circuits tbody tr")
    assert page.locator("#circuits tbody tr").count() == len(rows) == 3
    page.select_option("#filter-task", "gt")
    page.wait_for_url("**task=gt**")
    page.wait_for_selector("#circuits tbody tr")
    assert page.locator("#circuits tbody tr").count() == 1
    page.goto(server + "/")
    page.fill("#search", "ioi-toy")
    assert page.locator("#circuits tbody tr").count() == 1
    assert page.js_errors == []


def test_hostile_names_are_shown_as_text(server, page, hostile, web_db) -> None:
    _, ids = web_db
    page.goto(server + "/")
    page.wait_for_selector("#circuits tbody tr")
    row = page.locator(f"#circuits tbody tr[data-id='{ids['ind']}']")
    assert hostile.split("\x1b")[0] in row.inner_text()
    assert page.locator("#circuits img, #circuits b").count() == 0
    page.goto(server + f"/circuit/{ids['ind']}")
    page.wait_for_selector("#drawing circle")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("h1 img").count() == 0


def test_circuit_page_hover_click_slider_zoom(server, page, web_db) -> None:
    _, ids = web_db
    data = api(server, f"/api/circuits/{ids['ioi']}")
    page.goto(server + f"/circuit/{ids['ioi']}")
    page.wait_for_selector("#drawing circle")
    assert page.locator("#drawing circle").count() == len(data["layout"]["nodes"])
    # hover shows id, role and score
    page.hover("circle[data-node='a1.h1']")
    tip = page.inner_text("#tooltip")
    assert "a1.h1" in tip and "name mover" in tip and "score: 2" in tip
    # click shows the node's edges
    page.click("circle[data-node='a1.h1']", force=True)
    assert page.inner_text("#selected-node") == "a1.h1"
    assert "input->a1.h1<v>" in page.inner_text("#selection")
    assert "a1.h1->logits" in page.inner_text("#selection")
    # the edge slider hides all but the strongest edges
    total = len(data["layout"]["edges"])
    visible = "document.querySelectorAll('#drawing .edge:not([style*=\"none\"])').length"
    assert page.evaluate(visible) == total
    page.fill("#edge-slider", "2")
    page.dispatch_event("#edge-slider", "input")
    assert page.evaluate(visible) == 2
    assert page.inner_text("#edge-count") == f"2 of {total}"
    # zoom changes the view box
    before = page.get_attribute("#drawing", "viewBox")
    page.hover("#drawing")
    page.mouse.wheel(0, -300)
    assert page.get_attribute("#drawing", "viewBox") != before
    # metrics and the faithfulness curve as stored
    assert "0.9" in page.inner_text(".layout")  # CPR
    assert page.locator("#curve polyline").count() == 1
    # attention patterns kept with the run: a heatmap per head and prompt
    page.select_option("#attention-head", "a1.h1")
    assert page.get_attribute("#attention svg", "data-head") == "a1.h1"
    assert page.locator("#attention rect").count() == 9
    assert page.inner_text("#attention-prompt-text") == "When Mary and"
    assert page.js_errors == []


def test_compare_page_numbers_match_json(server, page) -> None:
    want = api(server, "/api/compare?a=ioi&b=gt")
    page.goto(server + "/compare?a=ioi&b=gt")
    page.wait_for_selector("#overlap tbody tr")
    cells = page.locator("#overlap tbody tr").first.locator("td").all_inner_texts()
    n = want["nodes"]
    assert cells[:4] == ["nodes", str(n["size_a"]), str(n["size_b"]), str(n["shared"])]
    assert float(cells[4]) == pytest.approx(n["jaccard"], abs=1e-3)
    page.wait_for_selector("#drawing circle")
    shared = page.locator("ul.shared li").all_inner_texts()
    assert sorted(s.split(" ")[0] for s in shared) == sorted(c["id"] for c in want["shared"])
    fill = page.get_attribute("circle[data-node='a1.h1']", "fill")
    assert fill == page.get_attribute("circle[data-node='m0']", "fill")  # both shared
    assert fill != page.get_attribute("circle[data-node='a0.h0']", "fill")  # A only
    assert page.js_errors == []


def test_reuse_and_find_pages(server, page) -> None:
    want = api(server, "/api/reuse")
    page.goto(server + "/reuse")
    page.wait_for_selector("#heatmap td.cell")
    assert page.locator("#heatmap td.cell").count() == len(want["tasks"]) ** 2
    first = page.locator("#components tbody tr").first.locator("td").all_inner_texts()
    top = want["components"][0]
    assert first[0] == top["component"] and first[2] == str(top["n_tasks"])
    page.locator("#components tbody tr").first.locator("a").first.click()
    page.wait_for_selector("#hits tbody tr")
    hits = api(server, f"/api/find?component={top['component']}&model={want['model']}")
    assert page.locator("#hits tbody tr").count() == len(hits)
    page.goto(server + "/find?component=nonsense!")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert page.js_errors == []
