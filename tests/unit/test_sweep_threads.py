"""Sweep workers compute with their share of the machine's CPUs, not every core each."""

from __future__ import annotations

import os

import pytest

from catalog.sweeps import executors
from catalog.sweeps.executors import THREAD_VARIABLES, PoolExecutor, limit_threads, threads_per_worker


def _probe(job: int) -> tuple[int, list[str], int]:
    """What a worker sees: torch's thread count, the variables, its job."""
    import torch

    return torch.get_num_threads(), [os.environ[v] for v in THREAD_VARIABLES], job


@pytest.mark.slow  # two spawned workers load torch
def test_each_pool_worker_computes_with_its_share_of_the_cpus(monkeypatch):
    monkeypatch.setattr(executors, "cpu_count", lambda: 6)  # read in the parent, which sizes the share
    pool = PoolExecutor(workers=2)
    assert pool.threads == 3
    results = list(pool.run(_probe, [0, 1, 2]))
    assert sorted(r[2] for r in results) == [0, 1, 2], results  # no job was lost to an exception
    assert {(threads, tuple(env)) for threads, env, _ in results} == {(3, ("3", "3", "3"))}


def test_the_share_is_at_least_one_thread():
    assert threads_per_worker(10_000) == 1
    assert threads_per_worker(1) == executors.cpu_count()


def test_limit_threads_sets_a_loaded_torch(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    for var in THREAD_VARIABLES:
        monkeypatch.setenv(var, "1")
    try:
        limit_threads(before + 1)
        assert torch.get_num_threads() == before + 1
        assert all(os.environ[v] == str(before + 1) for v in THREAD_VARIABLES)
    finally:
        torch.set_num_threads(before)


def test_executors_elsewhere_use_the_cpu_each_job_reserves():
    assert executors.RayExecutor(workers=2, address="10.0.0.1:6379").threads == 1
    assert executors.RayExecutor(workers=2).threads == threads_per_worker(2)  # a local cluster
    assert executors.SlurmExecutor(workers=4).threads == 1
