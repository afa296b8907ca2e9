"""Where a sweep's cells run: one small interface, three executors.

- ``pool``: a local process pool (the default), ``--workers N`` processes on this machine.
- ``ray``: Ray tasks, on the cluster at ``--address`` or on a local one started for the sweep
  (optional ``ray`` extra).
- ``slurm``: Slurm jobs through submitit (optional ``slurm`` extra); where no Slurm is
  installed, submitit's local executor runs the same jobs as local processes.

`run(fn, jobs)` yields each job's result (or the exception that lost it) as jobs finish;
`cancel()` stops what has not finished. Each job runs with `threads` CPU threads (`limit_threads`),
so that workers sharing a machine do not oversubscribe its cores. Executors know nothing about
discovery.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from catalog.errors import InvalidInputError, suggest

J = TypeVar("J")
R = TypeVar("R")


class Executor(Protocol):
    """Runs jobs somewhere and hands back their results as they finish."""

    name: ClassVar[str]
    remote: ClassVar[bool]  # workers may run on other machines: the catalog must be a server
    threads: int  # CPU threads each job uses

    def __init__(self, workers: int, address: str | None = None) -> None: ...

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R | BaseException]: ...

    def cancel(self) -> None: ...


#: What torch and the OpenMP / BLAS libraries under it read for their thread count at start-up.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Each of `workers` workers on this machine gets an equal share of its CPUs, at least one.

    >>> threads_per_worker(2) == max(1, cpu_count() // 2)
    True
    """
    return max(1, cpu_count() // workers)


def limit_threads(threads: int) -> None:
    """Make this process compute with `threads` CPU threads: the variables OpenMP and BLAS
    libraries read when they load, and torch's own count (set explicitly: a fresh torch caps what
    it reads from $OMP_NUM_THREADS at the cores it sees). Loads torch where it is installed: every
    job a sweep runs needs it."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    try:
        import torch
    except ImportError:
        return
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def threaded(threads: int, fn: Callable[[J], R], job: J) -> R:
    """``fn(job)`` after `limit_threads(threads)`: what every executor runs in its worker."""
    limit_threads(threads)
    return fn(job)


def _missing(extra: str, package: str) -> InvalidInputError:
    return InvalidInputError(f"--executor {extra} needs {package}: pip install 'circuit-catalog[{extra}]'.")


class PoolExecutor:
    """A local process pool; each worker process keeps the models it loaded for its next cells."""

    name: ClassVar[str] = "pool"
    remote: ClassVar[bool] = False

    def __init__(self, workers: int, address: str | None = None) -> None:
        if address:
            raise InvalidInputError("--address is for --executor ray; the pool runs on this machine.")
        self.workers, self.threads = workers, threads_per_worker(workers)
        self._pool: Any = None

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R | BaseException]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: the parent holds database connections that a child must not share
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = [self._pool.submit(threaded, self.threads, fn, job) for job in jobs]
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as e:  # a worker died (BrokenProcessPool) or the job could not run
                    yield e
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def cancel(self) -> None:
        if self._pool is None:
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(getattr(self._pool, "_processes", {}).values()):  # stop cells under way
            proc.terminate()


RAY_AUTH_MODE = "RAY_AUTH_MODE"  # Ray's variable: "token" or "disabled" (ray/_private/authentication)


def _local_cluster_auth() -> bool:
    """Start a local Ray cluster without token authentication unless $RAY_AUTH_MODE says otherwise;
    True when this set the variable (to be removed after the sweep).

    With the mode unset, recent Ray (2.60 here) turns token auth on for a local ``ray.init()`` and writes a
    token to ~/.ray/auth_token; from then on every ``ray start --head`` on the machine picks that
    token up while ``ray status --address=...`` and ``ray.init(address=...)`` do not, so they fail
    with InvalidAuthToken. The cluster lives only for the sweep; the mode is the one .ci/run uses
    for its head. The variable is read by the cluster processes Ray spawns (they inherit it)."""
    if RAY_AUTH_MODE in os.environ:
        return False
    os.environ[RAY_AUTH_MODE] = "disabled"
    return True


class RayExecutor:
    """Ray tasks (one CPU each); a local Ray cluster is started when no address is given.

    On a local cluster of `workers` CPUs each task computes with this machine's share of threads
    (`threads_per_worker`); on a cluster at an address, with the one CPU it reserves.
    """

    name: ClassVar[str] = "ray"
    remote: ClassVar[bool] = True

    def __init__(self, workers: int, address: str | None = None) -> None:
        self.workers, self.address = workers, address
        self.threads = 1 if address else threads_per_worker(workers)
        self._refs: list[Any] = []

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R | BaseException]:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline, and nothing reported
        try:
            import ray
        except ImportError:
            raise _missing("ray", "Ray") from None
        started_here = not ray.is_initialized()
        auth_set_here = started_here and not self.address and _local_cluster_auth()
        try:
            if started_here:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    # address="local": always a new cluster, never one an earlier `ray start` left behind
                    ray.init(address="local", num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
            remote = ray.remote(num_cpus=1, max_retries=0)(threaded)
            self._refs = [remote.remote(self.threads, fn, job) for job in jobs]
            pending = list(self._refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    yield ray.get(done[0])
                except Exception as e:  # the task's worker died, or the task was cancelled
                    yield e
        finally:
            if started_here:
                ray.shutdown()
            if auth_set_here:
                os.environ.pop(RAY_AUTH_MODE, None)

    def cancel(self) -> None:
        try:
            import ray
        except ImportError:
            return
        for ref in self._refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished
                pass


class SlurmExecutor:
    """Slurm jobs through submitit (its local executor where Slurm is not installed); each job
    reserves one CPU and computes with one thread."""

    name: ClassVar[str] = "slurm"
    remote: ClassVar[bool] = True

    def __init__(self, workers: int, address: str | None = None) -> None:
        if address:
            raise InvalidInputError("--address is for --executor ray; Slurm is reached through its own commands.")
        self.workers, self.threads = workers, 1
        self._jobs: list[Any] = []

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R | BaseException]:
        try:
            import submitit
        except ImportError:
            raise _missing("slurm", "submitit") from None
        folder = Path(os.environ.get("CATALOG_SLURM_FOLDER", "catalog-slurm")) / "%j"
        executor = submitit.AutoExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=int(os.environ.get("CATALOG_SLURM_TIMEOUT_MIN", "240")),
                                   cpus_per_task=1, slurm_array_parallelism=self.workers)
        with executor.batch():
            self._jobs = [executor.submit(threaded, self.threads, fn, job) for job in jobs]
        pending = list(self._jobs)
        while pending:
            for job in [j for j in pending if j.done()]:
                pending.remove(job)
                try:
                    yield job.result()
                except Exception as e:  # the job failed or was cancelled
                    yield e
            if pending:
                import time

                time.sleep(0.5)

    def cancel(self) -> None:
        for job in self._jobs:
            try:
                job.cancel(check=False)
            except Exception:  # already finished
                pass


EXECUTORS: dict[str, type[Executor]] = {e.name: e for e in (PoolExecutor, RayExecutor, SlurmExecutor)}  # type: ignore[misc]


def get_executor(name: str) -> type[Executor]:
    """The executor registered as `name`, or an error naming the known ones."""
    try:
        return EXECUTORS[name]
    except KeyError:
        raise suggest(name, list(EXECUTORS), "executor") from None
