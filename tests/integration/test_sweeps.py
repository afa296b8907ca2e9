"""Sweeps end to end: a process pool on SQLite (with a failing cell, and a worker killed mid-sweep
then resumed), a real Ray head and submitit's local executor on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.store import Catalog

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

PG_ENV = "CATALOG_TEST_POSTGRES_URL"
RAY_ENV = "CATALOG_TEST_RAY_ADDRESS"


def catalog_cli(db: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "cli.app", "--db", db, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def tagged(cat: Catalog, sweep_id: int) -> list[int]:
    return [r.id for r in cat.circuits(tag=f"sweep-{sweep_id}")]


def test_pool_sweep_runs_every_cell_and_a_failing_cell_stops_nothing(tmp_path):
    db = str(tmp_path / "sweep.db")
    out = catalog_cli(db, "sweep", "--task", "ioi", "--task", "colored-objects", "--method", "eap",
                      "--model", "catalog-default", "--model", str(tmp_path / "no-such-model"),
                      "--n", "8", "--workers", "2", "--json")
    assert out.returncode == 1, out.stderr  # some cells failed: said on stderr, table on stdout
    assert "2 of 4 cells did not finish" in out.stderr and "catalog sweep --resume 1" in out.stderr
    record = json.loads(out.stdout)
    status = {c["key"]: c["status"] for c in record["cells"]}
    assert status == {"ioi|eap|catalog-default|0": "done", "colored-objects|eap|catalog-default|0": "done",
                      f"ioi|eap|{tmp_path / 'no-such-model'}|0": "failed",
                      f"colored-objects|eap|{tmp_path / 'no-such-model'}|0": "failed"}
    assert all("no-such-model" in (c["error"] or "") for c in record["cells"] if c["status"] == "failed")
    with Catalog.open(db) as cat:
        ids = tagged(cat, 1)
        assert sorted(ids) == sorted(c["circuit_id"] for c in record["cells"] if c["circuit_id"])
        assert {cat.get_run(cat.summary(i).run_id).provenance.seed for i in ids} == {0}
        cost = cat.sweeps.get(1).cost
        workers = cost["workers"]
        assert sum(w["cells"] for w in workers.values()) == 4
        assert all(w["peak_rss_mb"] > 0 and w["cpu_seconds"] > 0 for w in workers.values())
        # Each worker computes with its share of the CPUs (the same affinity as this process).
        from catalog.sweeps.executors import threads_per_worker

        assert cost["threads_per_worker"] == threads_per_worker(2)
        assert all(w["threads"] == threads_per_worker(2) for w in workers.values())


def test_a_killed_worker_leaves_cells_interrupted_and_resume_finishes_each_once(tmp_path):
    db = str(tmp_path / "sweep.db")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cli.app", "--db", db, "sweep", "--task", "ioi",
                             "--task", "colored-objects", "--method", "eap", "--seed", "0", "--seed", "1",
                             "--n", "16", "--workers", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            with Catalog.open(db) as cat:
                running = [c for s in cat.sweeps.all() for c in s.cells if c.status == "running" and c.worker]
        except Exception:  # the catalog is still being created
            continue
        if running:
            victim = int(running[0].worker.rsplit(":", 1)[1])
            os.kill(victim, signal.SIGKILL)
    assert victim is not None, "no cell started"
    proc.communicate(timeout=300)
    with Catalog.open(db) as cat:
        first = cat.sweeps.get(1)
        assert first.status in ("failed", "interrupted")
        assert first.counts()["running"] == 0 and first.counts()["interrupted"] >= 1
        done_before = {c.key for c in first.cells if c.status == "done"}
    again = catalog_cli(db, "sweep", "--resume", "1", "--json")
    assert again.returncode == 0, again.stderr
    record = json.loads(again.stdout)
    assert record["status"] == "done" and all(c["status"] == "done" for c in record["cells"])
    resumed = [c for c in record["cells"] if c["key"] not in done_before]
    assert resumed and all(c["attempts"] >= 1 for c in resumed)
    with Catalog.open(db) as cat:
        ids = tagged(cat, 1)
        assert len(ids) == 4 == len({c["circuit_id"] for c in record["cells"]})  # one circuit per cell
        assert sorted(ids) == sorted(c["circuit_id"] for c in record["cells"])


def test_sqlite_is_refused_for_executors_on_other_machines(tmp_path):
    for executor in ("ray", "slurm"):
        out = catalog_cli(str(tmp_path / "x.db"), "sweep", "--executor", executor, "--task", "ioi")
        assert out.returncode == 1 and "use a PostgreSQL catalog" in out.stderr, out.stderr
    with Catalog.open(str(tmp_path / "x.db")) as cat:
        assert cat.sweeps.all() == []  # refused before anything was stored


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"sweeps on Ray and Slurm write to PostgreSQL: set {PG_ENV} (`. .ci/postgres.sh`)")
    from catalog.store.testing import fresh_postgres_database

    with fresh_postgres_database(base) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ray_head(env: dict[str, str]) -> Iterator[str]:
    """A Ray head started as .ci/run starts it, once `ray status` answers; stopped by its process id."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    head = subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", "--block"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([ray_bin, "status", f"--address={address}"], capture_output=True, env=env).returncode:
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Ray head did not start")
            time.sleep(1)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a graceful stop can take a minute on a busy machine
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=60)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """The Ray head .ci/run started ($CATALOG_TEST_RAY_ADDRESS), else one started here."""
    if os.environ.get(RAY_ENV):
        yield os.environ[RAY_ENV]
        return
    pytest.importorskip("ray", reason="Ray sweeps need the ray extra: pip install -e '.[ray]'")
    # the auth mode .ci/run uses: an explicit mode makes Ray ignore a stale ~/.ray/auth_token
    with ray_head({**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}) as address:
        yield address


_LOCAL_RAY = """
import json, os
from catalog.sweeps.executors import RayExecutor

def square(x: int) -> int:
    return x * x

results = sorted(RayExecutor(2).run(square, [1, 2, 3]))
print(json.dumps({"results": results, "auth_mode_after": os.environ.get("RAY_AUTH_MODE")}))
"""


def test_local_ray_cluster_leaves_no_auth_token_for_a_later_head(tmp_path):
    """A sweep on a local Ray cluster (no --address) writes no ~/.ray/auth_token, so a head started
    afterwards the way .ci/run did before it set RAY_AUTH_MODE (no mode given) still answers
    `ray status`: with the token, the head took token auth and `ray status` got InvalidAuthToken."""
    pytest.importorskip("ray", reason="Ray sweeps need the ray extra: pip install -e '.[ray]'")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.run([sys.executable, "-c", _LOCAL_RAY], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2], timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"results": [1, 4, 9], "auth_mode_after": None}
    assert not (home / ".ray" / "auth_token").exists()
    with ray_head(env):
        pass  # ray_head fails the test unless `ray status` answers the new head


@pytest.mark.postgres
def test_ray_sweep_into_postgresql(pg_url, ray_address):
    out = catalog_cli(pg_url, "sweep", "--executor", "ray", "--address", ray_address, "--task", "colored-objects",
                      "--method", "eap", "--seed", "0", "--seed", "1", "--n", "8", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["executor"] == "ray" and [c["status"] for c in record["cells"]] == ["done", "done"]
    with Catalog.open(pg_url) as cat:
        assert len(tagged(cat, record["id"])) == 2


@pytest.mark.postgres
def test_slurm_sweep_through_submitit_into_postgresql(pg_url, tmp_path, monkeypatch):
    pytest.importorskip("submitit", reason="Slurm sweeps need the slurm extra: pip install -e '.[slurm]'")
    monkeypatch.setenv("CATALOG_SLURM_FOLDER", str(tmp_path / "jobs"))
    out = catalog_cli(pg_url, "sweep", "--executor", "slurm", "--task", "ioi", "--method", "eap",
                      "--n", "8", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["executor"] == "slurm" and record["cells"][0]["status"] == "done"
