"""Import memory benchmark: peak memory per megabyte of imported file, for each format.

    python benchmarks/bench_import.py            # GPT-2-small-sized files (~2-6 MB each)
    python benchmarks/bench_import.py --scale 4  # bigger circuit-tracer / catalog files

Each file is read (`catalog.formats.read_circuits`) and imported (`catalog.formats.import_file`
into a fresh SQLite catalog: reading, validation, the graph build, the content hash and the
store's inserts) in a fresh subprocess, so one run's garbage never counts against the next.
Peak is measured two ways, in separate runs so neither disturbs the other: tracemalloc's peak of
Python allocations over the whole call, and the peak resident set's growth over the resident set
just before the call (Linux's VmHWM, reset first through /proc/self/clear_refs; elsewhere
ru_maxrss, which can only over-state it). RSS also counts what tracemalloc cannot see (the C
parsers' buffers, SQLite's page cache) and the allocator's slack, so it is the larger figure.
Target: at most 5x the file's size. Figures are printed, never asserted: they depend on the
Python build.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import resource, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
import catalog.formats, catalog.store, networkx  # imports are not part of the import's cost
from catalog.formats import import_file, read_circuits
from catalog.store import Catalog
path, db, mode, model, how, warm = sys.argv[2:8]
cat = Catalog.open("sqlite:///" + db)
if warm:  # a first, tiny import pays the process's one-time costs of writing (see `main`)
    import_file(cat, warm, task="ioi")

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))

try:  # reset the peak resident set to the current one (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before, peak_rss = status("VmRSS"), lambda: status("VmHWM")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if how == "trace":
    tracemalloc.start()
t = time.perf_counter()
if mode == "read":
    read_circuits(path, model=model or None, task="ioi")
else:
    import_file(cat, path, model=model or None, task="ioi")
seconds = time.perf_counter() - t
peak = tracemalloc.get_traced_memory()[1] if how == "trace" else max(0, peak_rss() - before)
print(peak, seconds)
"""


def gpt2_eap_ig_doc(rng: random.Random) -> dict:
    """A full GPT-2-small EAP-IG graph (32,491 scored edges, ~2% in the graph), as EAP-IG writes it."""
    from catalog.formats.eap_ig import implied_edges, implied_nodes
    from catalog.naming import QKV, format_edge

    nodes = {n: {"in_graph": rng.random() < 0.1} for n in implied_nodes(12, 12)}
    edges = {format_edge(s, d, QKV(q) if q else None): {"score": rng.gauss(0, 1), "in_graph": rng.random() < 0.02}
             for s, d, q in implied_edges(12, 12, False)}
    return {"cfg": {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": False, "d_model": 768},
            "nodes": nodes, "edges": edges}


def circuit_tracer_doc(rng: random.Random, n_features: int) -> dict:
    """A Gemma-2-2B attribution graph with `n_features` transcoder features and ~8 links each."""
    def cantor(a: int, b: int) -> int:
        return (a + b) * (a + b + 1) // 2 + b

    nodes = [{"node_id": f"E_{i}_{i}", "feature": i, "layer": "E", "ctx_idx": i, "feature_type": "embedding",
              "jsNodeId": f"E-{i}", "clerp": ""} for i in range(8)]
    for i in range(n_features):
        layer, idx, ctx = rng.randrange(26), rng.randrange(16384), rng.randrange(8)
        nodes.append({"node_id": f"{layer}_{idx}_{ctx}_{i}", "feature": cantor(layer, idx), "layer": str(layer),
                      "ctx_idx": ctx, "feature_type": "cross layer transcoder", "jsNodeId": f"{layer}-{i}",
                      "clerp": f"feature {i} label text", "influence": rng.random(), "activation": rng.random()})
    seen = set()
    uniq = []
    for nd in nodes:  # the same component may not appear twice
        key = (nd["layer"], nd["feature"], nd["ctx_idx"])
        if key not in seen:
            seen.add(key)
            uniq.append(nd)
    nodes = uniq
    nodes.append({"node_id": "27_2135_7", "feature": 2135, "layer": "27", "ctx_idx": 7, "feature_type": "logit",
                  "jsNodeId": "L-0", "clerp": "Output", "token_prob": 0.5})
    def rank(nd: dict) -> tuple[int, int]:
        layer = {"E": -1}.get(nd["layer"], None)
        return nd["ctx_idx"], int(nd["layer"]) if layer is None else layer

    pairs: set[tuple[str, str]] = set()
    # forward links only (no later position, lower layer): about a quarter of all ordered pairs, so
    # a tiny graph asks for fewer than 8 a node
    wanted = min(8 * len(nodes), len(nodes) * (len(nodes) - 1) // 8)
    while len(pairs) < wanted:
        a, b = rng.sample(nodes, 2)
        (pa, la), (pb, lb) = rank(a), rank(b)
        if pa <= pb and la < lb:
            pairs.add((a["node_id"], b["node_id"]))
    links = [{"source": s, "target": t, "weight": rng.gauss(0, 1)} for s, t in sorted(pairs)]
    return {"metadata": {"slug": "bench", "scan": "gemma-2-2b", "prompt_tokens": [str(i) for i in range(8)]},
            "qParams": {"supernodes": []}, "nodes": nodes, "links": links}


def make_files(folder: Path, scale: int) -> list[tuple[str, Path, str]]:
    """(format, file, --model) for each importable format."""
    from catalog.formats import read_circuits, write_circuit

    rng = random.Random(0)
    out = []
    eap = folder / "ioi_eap-ig.json"
    eap.write_text(json.dumps(gpt2_eap_ig_doc(rng)))
    out.append(("eap-ig", eap, "gpt2-small"))
    legacy = folder / "ioi_eap-ig-legacy.json"
    doc = json.loads(eap.read_text())
    doc["nodes"] = {k: v["in_graph"] for k, v in doc["nodes"].items()}
    legacy.write_text(json.dumps(doc))
    out.append(("eap-ig legacy", legacy, "gpt2-small"))
    ct = folder / "ioi_circuit-tracer.json"
    ct.write_text(json.dumps(circuit_tracer_doc(rng, 2000 * scale)))
    out.append(("circuit-tracer", ct, ""))
    circuit = read_circuits(eap, model="gpt2-small", task="ioi")[0]
    for fmt, name in (("json", "ioi_catalog.json"), ("graphml", "ioi_catalog.graphml")):
        path = folder / name
        write_circuit(circuit, fmt, path, all_edges=True)  # every scored edge, as eap-ig holds
        out.append(("catalog-json" if fmt == "json" else fmt, path, ""))
    return out


TARGET = 5.0  # peak memory per byte of file


def measure(path: Path, model: str, mode: str, folder: Path, how: str, warm: Path | None = None) -> tuple[int, float]:
    """(peak bytes, seconds) of one read or import in a fresh process, by tracemalloc or RSS;
    with `warm`, that file is imported first and only the second import is measured."""
    db = folder / f"bench-{mode}-{how}-{path.stem}{'-warm' if warm else ''}.db"
    db.unlink(missing_ok=True)
    res = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(path), str(db), mode, model, how,
                          str(warm or "")], capture_output=True, text=True, check=True)
    peak, seconds = res.stdout.split()
    return int(peak), float(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=1, help="multiply the circuit-tracer graph's size")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        warm = folder / "warm_circuit-tracer.json"  # 20 features, 25 KB
        warm.write_text(json.dumps(circuit_tracer_doc(random.Random(1), 20)))
        print(f"{'format':<16} {'file MB':>8} {'read x':>7} {'import x':>9} {'import RSS x':>13} "
              f"{'warm RSS x':>11} {'import s':>9}  target <= {TARGET:g}x")
        for fmt, path, model in make_files(folder, args.scale):
            size = path.stat().st_size
            read_peak, _ = measure(path, model, "read", folder, "trace")
            peak, _ = measure(path, model, "import", folder, "trace")
            rss, seconds = measure(path, model, "import", folder, "rss")  # timed without tracemalloc's cost
            warm_rss, _ = measure(path, model, "import", folder, "rss", warm)
            worst = max(peak, rss) / size
            verdict = "met" if worst <= TARGET else (
                f"MISSED ({worst:.1f}x; {warm_rss / size:.1f}x after a first import)")
            print(f"{fmt:<16} {size / 2**20:>8.2f} {read_peak / size:>7.1f} {peak / size:>9.1f} {rss / size:>13.1f} "
                  f"{warm_rss / size:>11.1f} {seconds:>9.2f}  {verdict}")
        first, _ = measure(warm, "", "import", folder, "rss")
        print("x = peak memory / file size, over the whole read or import (tracemalloc: Python allocations; "
              "RSS: growth of the peak resident set; warm RSS: the same import after a first, tiny one in the "
              "same process).")
        print(f"The first write in a process costs a fixed {first / 2**20:.2f} MB of resident set whatever the "
              f"file's size (the tiny {warm.stat().st_size / 1024:.0f} KB import alone), which weighs on the "
              "smallest files' RSS figure.")


if __name__ == "__main__":
    main()
