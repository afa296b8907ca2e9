"""Store benchmark: ingest through `Catalog.add` against raw ``sqlite3.executemany`` of the same
rows, then all-pairs overlap and reuse over every circuit, on SQLite and (when
``CATALOG_TEST_POSTGRES_URL`` is set) PostgreSQL.

    python benchmarks/bench_store.py                 # 1,000 GPT-2-small-shaped circuits, ~1M edges
    python benchmarks/bench_store.py --circuits 100  # quicker

Targets: ingest at least half the raw rate; overlap and reuse under 1 s each. Figures are
printed, never asserted: speed depends on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.graph import CircuitGraph, Edge, Node  # noqa: E402
from catalog.naming import QKV, forward_rank, parse_node  # noqa: E402
from catalog.provenance import Circuit, Provenance  # noqa: E402
from catalog.queries import pairwise_overlap, reuse  # noqa: E402
from catalog.shapes import KNOWN_SHAPES  # noqa: E402
from catalog.store import Catalog  # noqa: E402
from catalog.store.convert import EDGE_COLUMNS, NODE_COLUMNS, edge_rows, node_rows  # noqa: E402
from catalog.store.testing import fresh_postgres_database  # noqa: E402

SHAPE = KNOWN_SHAPES["gpt2-small"]


def make_circuits(n: int, edges_per_circuit: int, n_tasks: int, seed: int) -> list[Circuit]:
    """`n` random circuits on GPT-2 small, each with `edges_per_circuit` scored edges (the top
    40% by |score| in the circuit); each task prefers its own components, so overlaps vary."""
    rng = random.Random(seed)
    heads = [f"a{layer}.h{h}" for layer in range(SHAPE.n_layers) for h in range(SHAPE.n_heads)]
    mlps = [f"m{layer}" for layer in range(SHAPE.n_layers)]
    rank = {c: forward_rank(parse_node(c)) for c in ["input", *heads, *mlps, "logits"]}
    favourites = [rng.sample(heads, 40) + rng.sample(mlps, 6) for _ in range(n_tasks)]
    prov = Provenance(source="discovery", method="eap-ig", seed=seed, library_versions={}, created_by="bench")
    out = []
    for i in range(n):
        task = i % n_tasks
        comps = set(rng.sample(favourites[task], 30) + rng.sample(heads, 25) + rng.sample(mlps, 4))
        nodes = ["input", *sorted(comps, key=rank.__getitem__), "logits"]
        keys: set[tuple[str, str, str | None]] = set()
        while len(keys) < edges_per_circuit:
            a, b = rng.sample(nodes, 2)
            src, dst = (a, b) if rank[a] < rank[b] else (b, a)
            if rank[src] == rank[dst]:
                continue
            keys.add((src, dst, rng.choice("qkv") if dst.startswith("a") else None))
        edges = tuple(Edge(s, d, QKV(q) if q else None, rng.gauss(0.0, 1.0)) for s, d, q in sorted(keys, key=str))
        graph = CircuitGraph(SHAPE, tuple(Node.of(c) for c in nodes), edges).top_k(int(0.4 * edges_per_circuit))
        out.append(Circuit(graph, f"task-{task}", prov, name=f"bench-{i}"))
    return out


class RawWriter:
    """Plain sqlite3.executemany of the same node and edge rows, one transaction per circuit,
    into the same schema (migrated by the catalog) with the store's connection settings (WAL,
    synchronous NORMAL, foreign keys on unless `foreign_keys` is False)."""

    def __init__(self, path: Path, foreign_keys: bool = True) -> None:
        Catalog.open(str(path)).close()
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        self.conn.execute("INSERT INTO models (id, name, revision, n_layers, n_heads, parallel_attn_mlp) "
                          "VALUES (1, 'gpt2-small', '', 12, 12, 0)")
        self.conn.execute("INSERT INTO tasks (id, name) VALUES (1, 'bench')")
        self.circuit_sql = (
            "INSERT INTO circuits (id, model_id, task_id, metrics, added_at, n_nodes, n_edges, n_heads, n_mlps, "
            "n_features, n_scored_edges, source, method_params, library_versions, created_by, created_at) "
            "VALUES (?, 1, 1, '{}', '2026-01-01', 0, 0, 0, 0, 0, 0, 'import', '{}', '{}', 'b', '2026-01-01')")
        self.node_sql = f"INSERT INTO nodes ({', '.join(NODE_COLUMNS)}) VALUES ({', '.join('?' * len(NODE_COLUMNS))})"
        self.edge_sql = f"INSERT INTO edges ({', '.join(EDGE_COLUMNS)}) VALUES ({', '.join('?' * len(EDGE_COLUMNS))})"

    def write(self, prepared: list[tuple[int, list[tuple], list[tuple]]]) -> float:
        """Insert already-built rows; returns the seconds taken."""
        start = time.perf_counter()
        for cid, nodes, edges in prepared:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(self.circuit_sql, (cid,))
            self.conn.executemany(self.node_sql, nodes)
            self.conn.executemany(self.edge_sql, edges)
            self.conn.execute("COMMIT")
        return time.perf_counter() - start


def ingest(cat: Catalog, circuits: list[Circuit]) -> float:
    start = time.perf_counter()
    for c in circuits:
        cat.add(c)
    return time.perf_counter() - start


def sqlite_ingest(tmp: Path, circuits: list[Circuit], chunk: int = 50) -> tuple[Catalog, dict[str, float]]:
    """Ingest through `Catalog.add` and through raw sqlite3 (foreign keys on and off), taking
    turns every `chunk` circuits so that load from other processes hits all three alike. Raw rows
    are built before their clock starts; `Catalog.add` is timed from the `Circuit` objects."""
    cat = Catalog.open(str(tmp / "catalog.db"))
    raw, raw_nofk = RawWriter(tmp / "raw.db"), RawWriter(tmp / "raw-nofk.db", foreign_keys=False)
    times = {"catalog": 0.0, "raw": 0.0, "raw_nofk": 0.0}
    for lo in range(0, len(circuits), chunk):
        part = circuits[lo:lo + chunk]
        prepared = [(lo + i + 1, list(node_rows(lo + i + 1, c.graph)), list(edge_rows(lo + i + 1, c.graph)))
                    for i, c in enumerate(part)]
        times["raw"] += raw.write(prepared)
        times["raw_nofk"] += raw_nofk.write(prepared)
        times["catalog"] += ingest(cat, part)
    raw.conn.close()
    raw_nofk.conn.close()
    return cat, times


def best_of(runs: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def queries(cat: Catalog, label: str, repeat: int) -> None:
    t_pairs = best_of(repeat, lambda: pairwise_overlap(cat, model="gpt2-small"))
    m = pairwise_overlap(cat, model="gpt2-small")
    t_reuse = best_of(repeat, lambda: reuse(cat, model="gpt2-small"))
    r = reuse(cat, model="gpt2-small")
    t_find = best_of(repeat, lambda: cat.find("a9.h9", model="gpt2-small"))
    print(f"  {label}: all-pairs overlap of {len(m.ids)} circuits ({len(m.ids) ** 2:,} pairs): {t_pairs:.3f} s "
          f"(target < 1 s); reuse ({len(r.components)} components x {len(r.tasks)} tasks): {t_reuse:.3f} s "
          f"(target < 1 s); find a9.h9: {t_find:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuits", type=int, default=1000)
    ap.add_argument("--edges", type=int, default=1000, help="scored edges per circuit")
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="query timings are the best of this many runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL even if CATALOG_TEST_POSTGRES_URL is set")
    args = ap.parse_args()

    t0 = time.perf_counter()
    circuits = make_circuits(args.circuits, args.edges, args.tasks, args.seed)
    n_edges = sum(len(c.graph.edges) for c in circuits)
    n_nodes = sum(len(c.graph.nodes) for c in circuits)
    print(f"{len(circuits)} GPT-2-small-shaped circuits: {n_edges:,} edges, {n_nodes:,} nodes "
          f"(built in {time.perf_counter() - t0:.1f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        cat, t = sqlite_ingest(Path(tmp), circuits)
        rows = n_edges + n_nodes
        print("SQLite ingest (one transaction per circuit, the three writers taking turns every 50 circuits):")
        print(f"  raw sqlite3.executemany, same settings:         {t['raw']:.2f} s, {rows / t['raw']:,.0f} rows/s")
        print(f"  raw sqlite3.executemany, foreign keys off:      {t['raw_nofk']:.2f} s, "
              f"{rows / t['raw_nofk']:,.0f} rows/s")
        print(f"  Catalog.add (foreign keys on):                  {t['catalog']:.2f} s, "
              f"{rows / t['catalog']:,.0f} rows/s")
        print(f"  rate ratio Catalog.add / raw (same settings):   {t['raw'] / t['catalog']:.2f} (target >= 0.5)")
        print(f"  rate ratio Catalog.add / raw (no foreign keys): {t['raw_nofk'] / t['catalog']:.2f}")
        queries(cat, "SQLite", args.repeat)
        cat.close()

    base = os.environ.get("CATALOG_TEST_POSTGRES_URL")
    if base and not args.no_postgres:
        with fresh_postgres_database(base, prefix="cc_bench") as url:
            cat = Catalog.open(url)
            took = ingest(cat, circuits)
            print(f"PostgreSQL ingest: Catalog.add {took:.2f} s, {(n_edges + n_nodes) / took:,.0f} rows/s")
            queries(cat, "PostgreSQL", args.repeat)
            cat.close()
    else:
        print("PostgreSQL: skipped (set CATALOG_TEST_POSTGRES_URL, e.g. with `. .ci/postgres.sh`)")


if __name__ == "__main__":
    main()
