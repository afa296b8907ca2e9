"""How long the web view's circuit page takes to render the largest stored circuit, and what the
page loads (not a test).

    python benchmarks/bench_web.py                 # a fresh catalog: the MIB GPT-2 small export from
                                                   # ../shared imported with --top-k 10000, and the
                                                   # shared attribution graphs, when present
    python benchmarks/bench_web.py --db URL        # the largest circuit of an existing catalog
    python benchmarks/bench_web.py --repeat 5

It starts `catalog serve` on a free localhost port as a subprocess (stopped by its process id),
opens each circuit page in Chromium through Playwright (``$CATALOG_TEST_CHROMIUM``, else Debian's
`chromium`), and prints the time from navigation until the drawing's nodes are on the page and
the network is idle (median of ``--repeat`` fresh loads), with the bytes and the number of
responses the page loaded. Without ../shared, the fresh catalog holds the published circuits
instead, and the benchmark says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "fixtures" / "peer-formats"
CATALOG = [sys.executable, "-m", "cli.app"]


def catalog(db: str, *args: str) -> str:
    return subprocess.run([*CATALOG, "--db", db, *args], check=True, capture_output=True, text=True,
                          cwd=ROOT).stdout


def fresh_catalog(folder: Path) -> str:
    """A catalog of the largest circuits this checkout can get without the network."""
    db = f"sqlite:///{folder / 'bench-web.db'}"
    catalog(db, "db", "upgrade")
    mib = SHARED / "eap-ig_mib-example_ioi_gpt2-small.json.gz"
    if mib.is_file():
        catalog(db, "import", str(mib), "--top-k", "10000", "--name", "mib-ioi-top10000")
        catalog(db, "import", str(mib), "--name", "mib-ioi")
        for name in ("neuronpedia-circuit-tracer_son-clt-hp_gemma-2-2b.json",
                     "circuit-tracer_dallas-austin_gemma-2-2b.json"):
            catalog(db, "import", str(SHARED / name))
    else:
        print(f"{SHARED} is absent: measuring the published circuits instead of the MIB export")
        catalog(db, "published", "load")
    return db


def largest(db: str, count: int) -> list[tuple[int, str, int, int]]:
    """(id, name, nodes, edges) of the `count` circuits with the most edges."""
    from catalog.store import Catalog

    with Catalog.open(db, create=False) as cat:
        rows = [cat.summary(c.id) for c in cat.circuits()]
    rows.sort(key=lambda r: -r.n_edges)
    return [(r.id, r.name, r.n_nodes, r.n_edges) for r in rows[:count]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([*CATALOG, "--db", db, "serve", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/api/circuits", timeout=2).close()
            return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("catalog serve did not answer within 60 s")


def measure(browser: object, url: str) -> tuple[float, int, int]:
    """Seconds until the drawing is there and the network idle; bytes and responses loaded."""
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    sizes: list[int] = []
    page.on("response", lambda r: sizes.append(len(r.body()) if r.ok else 0))
    t0 = time.perf_counter()
    page.goto(url, wait_until="networkidle")
    page.wait_for_selector("#drawing circle")
    seconds = time.perf_counter() - t0
    context.close()
    return seconds, sum(sizes), len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="an existing catalog (default: build one in a temporary folder)")
    parser.add_argument("--circuits", type=int, default=3, help="how many of the largest circuits")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    exe = os.environ.get("CATALOG_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("needs Chromium: apt-get install chromium, or set CATALOG_TEST_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or fresh_catalog(Path(tmp))
        proc, base = serve(db)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
                warm = browser.new_page()  # the first request of the server and of the browser
                warm.goto(base + "/", wait_until="networkidle")
                warm.close()
                print(f"{'circuit':44s} {'nodes':>6s} {'edges':>7s} {'render (median)':>16s} {'loaded':>16s}")
                for cid, name, nodes, edges in largest(db, args.circuits):
                    runs = [measure(browser, f"{base}/circuit/{cid}") for _ in range(args.repeat)]
                    t = statistics.median(r[0] for r in runs)
                    size, responses = runs[-1][1], runs[-1][2]
                    print(f"#{cid} {name[:40]:40s} {nodes:6d} {edges:7d} {t:14.2f} s "
                          f"{size / 1024:9,.0f} KiB in {responses} responses")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
