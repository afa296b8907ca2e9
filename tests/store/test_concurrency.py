"""Faults and concurrency: four processes writing one new SQLite file at once lose nothing; a
writer killed with SIGKILL in the middle of an add leaves no partial circuit; eight writers of
every kind (import, discovery run, published load, delete) on SQLite and PostgreSQL lose
nothing, duplicate nothing, and readers racing the deletes never see half a circuit.

The file doubles as the worker script: ``python test_concurrency.py write|kill URL ...``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from catalog.graph import CircuitGraph, ModelShape
from catalog.provenance import Circuit, Provenance, Selection

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]


def dense_graph(n_layers: int, n_heads: int, seed: int, k: int) -> CircuitGraph:
    """Every edge of a model (q/k/v split), randomly scored, with the top `k` as the circuit."""
    rng = random.Random(seed)
    shape = ModelShape(f"dense-{n_layers}x{n_heads}", n_layers=n_layers, n_heads=n_heads)
    upstream, nodes, edges = ["input"], ["input"], []
    for layer in range(n_layers):
        heads = [f"a{layer}.h{h}" for h in range(n_heads)]
        edges += [(u, h, q, rng.gauss(0, 1)) for h in heads for u in upstream for q in "qkv"]
        upstream += heads
        edges += [(u, f"m{layer}", None, rng.gauss(0, 1)) for u in upstream]
        upstream.append(f"m{layer}")
        nodes += [*heads, f"m{layer}"]
    edges += [(u, "logits", None, rng.gauss(0, 1)) for u in upstream]
    return CircuitGraph.build(shape, [*nodes, "logits"], edges).top_k(k)


def worker_circuit(name: str, seed: int, n_layers: int = 4, n_heads: int = 4, k: int = 40) -> Circuit:
    prov = Provenance(source="import", method="eap-ig", seed=seed, selection=Selection(rule="top-k", value=k),
                      library_versions={}, created_by="test")
    prov = replace_created(prov)
    return Circuit(dense_graph(n_layers, n_heads, seed, k), task=f"task-{seed % 3}", provenance=prov, name=name)


def replace_created(prov: Provenance) -> Provenance:
    from datetime import datetime, timezone

    return prov.model_copy(update={"created_at": datetime(2026, 1, 1, tzinfo=timezone.utc)})


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.mark.slow
def test_four_writers_on_a_new_sqlite_file_lose_nothing(tmp_path):
    from catalog.store import Catalog

    url = f"sqlite:///{tmp_path / 'shared.db'}"  # does not exist yet: the writers also race to create it
    per_worker = 5
    procs = [_spawn("write", url, str(w), str(per_worker)) for w in range(4)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    cat = Catalog.open(url)
    stored = cat.circuits()
    assert len(stored) == 4 * per_worker
    assert len({r.id for r in stored}) == 4 * per_worker
    for row in stored:
        w, i = (int(x) for x in row.name.removeprefix("w").split("-"))
        expected = worker_circuit(row.name, seed=100 * w + i)
        assert cat.get(row.id) == replace(expected, id=row.id)
    cat.close()


@pytest.mark.slow
def test_sigkill_mid_add_leaves_no_partial_circuit(catalog_url):
    from sqlalchemy import func, select

    from catalog.store import Catalog
    from catalog.store.schema import AnnotationRow, EdgeRow, NodeRow

    Catalog.open(catalog_url).close()
    proc = _spawn("kill", catalog_url)
    seen = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line.strip())
        if line.startswith("adding 2"):
            break
        assert line, f"worker stopped early: {proc.stderr.read() if proc.stderr else ''}"
    time.sleep(0.1)  # the add of circuit 2 is under way (it takes well over a second)
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    assert "added 2" not in rest, "the kill came too late to interrupt an add"
    assert "added 1" in "\n".join(seen)

    cat = Catalog.open(catalog_url)
    stored = cat.circuits()
    assert [r.name for r in stored] == ["kill-0", "kill-1"]
    big = worker_circuit("kill", seed=0, n_layers=12, n_heads=12, k=500)
    expected_nodes = expected_edges = 0
    for row in stored:
        assert cat.get(row.id) == replace(big, name=row.name, id=row.id)
        expected_nodes += len(big.graph.nodes)
        expected_edges += len(big.graph.edges)
    with cat._db.session_scope() as s:  # no orphan rows from the interrupted add
        assert s.scalar(select(func.count()).select_from(NodeRow)) == expected_nodes
        assert s.scalar(select(func.count()).select_from(EdgeRow)) == expected_edges
        assert s.scalar(select(func.count()).select_from(AnnotationRow)) == 0
        if cat.backend == "sqlite":
            assert s.connection().exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    cat.add(worker_circuit("after", seed=7))  # the database is not left locked
    assert len(cat.circuits()) == 3
    cat.close()


def test_a_read_racing_a_delete_sees_the_whole_circuit_or_none(catalog_url, catalog, hand_circuits):
    """The delete commits between the reader's statements (after it read the circuit's row, before
    its edges): the reader's one snapshot still holds every node and edge."""
    from sqlalchemy import event

    from catalog.errors import NotFoundError
    from catalog.store import Catalog

    cid = catalog.add(hand_circuits["ioi"])
    other = Catalog.open(catalog_url)
    fired = []

    @event.listens_for(catalog._db.engine, "before_cursor_execute")
    def delete_first(conn, cursor, statement, *args):
        if "FROM edges" in statement and not fired:
            fired.append(True)
            other.delete(cid)  # another connection, committed before the edges are read

    got = catalog.get(cid)
    assert fired and got == replace(hand_circuits["ioi"], id=cid)
    with pytest.raises(NotFoundError):
        catalog.get(cid)
    other.close()


@pytest.mark.slow
def test_eight_writers_of_every_kind_lose_nothing_duplicate_nothing_tear_nothing(catalog_url, tmp_path):
    from catalog.formats.catalog_json import circuit_to_dict
    from catalog.published import published_circuits
    from catalog.store import Catalog

    cat = Catalog.open(catalog_url)
    victims = [cat.add(worker_circuit(f"victim-{i}", seed=1000 + i, k=60)) for i in range(12)]
    shared = [worker_circuit(f"file-{i}", seed=2000 + i) for i in range(3)]
    shared = [replace(c, provenance=c.provenance.model_copy(update={"source_sha256": "e" * 64})) for c in shared]
    file = tmp_path / "shared.json"
    file.write_text(json.dumps({"schema_version": 1, "circuits": [circuit_to_dict(c) for c in shared]}))
    half = ",".join(map(str, victims[:6])), ",".join(map(str, victims[6:]))
    writers = [("import", str(file)), ("import", str(file)), ("published",), ("published",),
               ("discover", "0"), ("discover", "1"), ("delete", half[0], str(tmp_path)),
               ("delete", half[1], str(tmp_path))]
    readers = [("read", ",".join(map(str, victims)), str(tmp_path))] * 2  # deletes wait for them
    procs = [_spawn(mode, catalog_url, *args) for mode, *args in readers + writers]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    reads = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs[:len(readers)]]
    assert all(r["torn"] == 0 for r in reads), reads
    assert sum(r["whole"] for r in reads) > 0  # the readers did read circuits before they went

    stored = cat.circuits()
    names = sorted(r.name for r in stored)
    published = sorted(e.name for e in published_circuits())
    discovered = sorted(f"run-{w}-{i}" for w in (0, 1) for i in range(3))
    assert names == sorted(published + discovered + [c.name for c in shared])  # once each; victims gone
    for row in stored:
        if row.name.startswith("file-"):
            i = int(row.name.split("-")[1])
            assert cat.get(row.id) == replace(shared[i], id=row.id, provenance=cat.get(row.id).provenance)
    runs = cat.list_runs()
    assert [r.status for r in runs] == ["done"] * 6 and all(len(r.circuit_ids) == 1 for r in runs)
    cat.close()


def _main(argv: list[str]) -> None:
    from catalog.store import Catalog

    mode, url = argv[0], argv[1]
    cat = Catalog.open(url)
    if mode == "write":
        worker, n = int(argv[2]), int(argv[3])
        for i in range(n):
            cat.add(worker_circuit(f"w{worker}-{i}", seed=100 * worker + i))
    elif mode == "import":
        from catalog.formats import import_file

        print(json.dumps([a.id for a in import_file(cat, argv[2])]))
    elif mode == "published":
        from catalog.published import load_published

        print(json.dumps([a.id for a in load_published(cat)]))
    elif mode == "discover":  # what a discovery job writes: a run, then its circuit with it
        worker = int(argv[2])
        for i in range(3):
            c = worker_circuit(f"run-{worker}-{i}", seed=3000 + 10 * worker + i)
            with cat.tracked_run(c.graph.shape, c.task, c.provenance) as rid:
                cat.finish_run(rid, c)
    elif mode == "delete":
        deadline = time.monotonic() + 120
        while len(list(Path(argv[3]).glob("reading-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        for cid in argv[2].split(","):
            time.sleep(0.05)
            cat.delete(int(cid))
    elif mode == "read":  # every victim, over and over, until all are gone: whole or not found
        from catalog.errors import NotFoundError

        ids = [int(x) for x in argv[2].split(",")]
        expected = {cid: replace(worker_circuit(f"victim-{i}", seed=1000 + i, k=60), id=cid)
                    for i, cid in enumerate(ids)}
        counts = {"whole": 0, "gone": 0, "torn": 0}
        deadline = time.monotonic() + 300
        while ids and time.monotonic() < deadline:
            for cid in list(ids):
                try:
                    got = cat.get(cid)
                except NotFoundError:
                    counts["gone"] += 1
                    ids.remove(cid)
                    continue
                counts["whole" if got == expected[cid] else "torn"] += 1
            Path(argv[3], f"reading-{os.getpid()}").touch()
        print(json.dumps(counts))
    elif mode == "kill":
        big = worker_circuit("kill", seed=0, n_layers=12, n_heads=12, k=500)  # ~32,000 scored edges
        for i in range(10**6):
            print(f"adding {i}", flush=True)
            cat.add(replace(big, name=f"kill-{i}"))
            print(f"added {i}", flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
