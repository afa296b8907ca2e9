"""Runs that never lie about their state: owner, heartbeat, and telling the dead from the busy.

A running discovery records its owner (host name and process id) and refreshes ``heartbeat_at``
from a background thread (`Heartbeat`). A ``running`` run is *stale* when its process is gone:
on the same host its pid no longer exists, or, anywhere, its heartbeat is older than
`STALE_AFTER_S`. Staleness is computed when runs are read (nothing can write for a process
killed with SIGKILL); `Catalog.cleanup_runs` then records such runs as failed, with the reason.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

#: Seconds between heartbeats of a running discovery.
HEARTBEAT_S = 30.0
#: A running run whose last heartbeat is older than this is stale (ten missed heartbeats).
STALE_AFTER_S = 300.0


def this_host() -> str:
    return socket.gethostname()[:255]


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie.

    >>> pid_alive(os.getpid())
    True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    try:  # a killed child not yet reaped still answers kill(0); /proc says it is a zombie
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stale_reason(host: str | None, pid: int | None, heartbeat: datetime | None, started: datetime,
                 now: datetime, stale_after: float = STALE_AFTER_S) -> str | None:
    """Why a ``running`` run is stale, or None while its owner may still be working."""
    if host is not None and pid is not None and host == this_host() and not pid_alive(pid):
        return f"its process {pid} on {host} is gone"
    last = heartbeat or started
    if now - last > timedelta(seconds=stale_after):
        owner = f" (process {pid} on {host})" if host and pid else ""
        return f"no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC{owner}"
    return None


class Heartbeat:
    """Calls `beat` every `every` seconds from a daemon thread until stopped (a context manager).

    A failed beat (database briefly busy) is skipped: the next one tries again, and only ten
    missed beats in a row make the run look stale."""

    def __init__(self, beat: Callable[[], None], every: float = HEARTBEAT_S) -> None:
        self._beat = beat
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="catalog-run-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a missed beat is harmless; see the class docstring
                pass

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every + 5)


def now() -> datetime:
    return datetime.now(timezone.utc)
