"""Fixtures for the web view: a catalog holding hand-built circuits (one with a hostile name), an
in-process API client, and a real `catalog serve` process for browser tests."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.provenance import Circuit

pytest.importorskip("fastapi", reason="the web view needs the `web` extra: pip install -e '.[web]'")

#: A name that would run script or repaint a terminal if it were ever treated as markup.
HOSTILE = '<img src=x onerror="window.__pwned=1"><b>bold</b>\x1b[31m'


@pytest.fixture
def hostile() -> str:
    return HOSTILE


@pytest.fixture
def web_circuits(hand_circuits: dict[str, Circuit]) -> dict[str, Circuit]:
    """The hand circuits of tests/conftest.py, one renamed to `HOSTILE`, one with a curve."""
    ioi = dataclasses.replace(hand_circuits["ioi"], **{
        "metrics": {"faithfulness": 0.8, "cpr": 0.9, "cmd": 0.1,
                    "faithfulness_curve": [[0.1, 0.2], [0.5, 0.7], [1.0, 1.0]]}})
    ind = dataclasses.replace(hand_circuits["ind"], name=HOSTILE)
    return {"ioi": ioi, "gt": hand_circuits["gt"], "ind": ind}


@pytest.fixture
def web_db(tmp_path: Path, web_circuits: dict[str, Circuit]) -> tuple[str, dict[str, int]]:
    """A SQLite catalog file holding `web_circuits`; returns its URL and the ids by task."""
    from catalog.attention import AttentionPatterns, PromptAttention
    from catalog.store import Catalog

    url = f"sqlite:///{tmp_path / 'web.db'}"
    with Catalog.open(url) as cat:
        ids = {task: cat.add(c) for task, c in web_circuits.items() if task != "ioi"}
        ioi = web_circuits["ioi"]  # stored as discovery stores it: with attention patterns
        run = cat.start_run(ioi.graph.shape, ioi.task, ioi.provenance)
        heads = sorted(ioi.graph.heads)
        row = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.1, 0.7, 0.2))
        ids["ioi"] = cat.finish_run(run, ioi, AttentionPatterns(heads=tuple(heads), prompts=(
            PromptAttention(prompt="When Mary and", tokens=("When", "Mary", "and"), read_position=2,
                            heads={h: row for h in heads}),)))
    return url, ids


@pytest.fixture
def client(web_db: tuple[str, dict[str, int]]) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from web import create_app

    with TestClient(create_app(web_db[0])) as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(web_db: tuple[str, dict[str, int]]) -> Iterator[str]:
    """`catalog serve` on a free localhost port as a subprocess; stopped by its pid after."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.app", "--db", web_db[0], "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/api/circuits", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.fail(f"catalog serve did not start: {out}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def chromium_path() -> str | None:
    """The browser Playwright drives: $CATALOG_TEST_CHROMIUM, else Debian's `chromium`."""
    return os.environ.get("CATALOG_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium under Playwright (skips, saying why, where no browser is installed)."""
    playwright = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (dev extra)")
    exe = chromium_path()
    if not exe:
        pytest.skip("browser tests need Chromium: apt-get install chromium (as .ci/run does), "
                    "or set CATALOG_TEST_CHROMIUM to a Chromium binary")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()
