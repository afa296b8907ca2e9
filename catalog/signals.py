"""Termination signals as exceptions, so transactions roll back and runs record why they stopped.

By default SIGTERM and SIGHUP kill a Python process on the spot: no ``finally`` runs, so a
discovery run would stay ``running`` forever. `install` (the CLI calls it at start-up) makes
SIGTERM, SIGHUP and SIGINT raise `Terminated`, a `KeyboardInterrupt`, in the main thread: open
transactions roll back and the run is marked ``interrupted`` with the signal's name. `shielded`
defers those signals while a few lines of bookkeeping must finish.

>>> str(Terminated(15)), Terminated(15).exit_code, Terminated(2).reason
('terminated by SIGTERM', 143, 'interrupted by SIGINT (Ctrl-C)')
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))


class Terminated(KeyboardInterrupt):
    """The process received a termination signal; exit code ``128 + signal number``."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(self.reason)

    @property
    def signame(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def reason(self) -> str:
        if self.signum == signal.SIGINT:
            return "interrupted by SIGINT (Ctrl-C)"
        return f"terminated by {self.signame}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return self.reason


def describe(exc: BaseException) -> str:
    """Why the work stopped, for a run's record: the signal, or Ctrl-C."""
    if isinstance(exc, Terminated):
        return exc.reason
    return "interrupted (Ctrl-C)"


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def install() -> bool:
    """Make SIGINT, SIGTERM and SIGHUP raise `Terminated` in this process. Only the main thread
    can install handlers; elsewhere this does nothing and returns False."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in HANDLED:
        signal.signal(sig, _raise)
    return True


@contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends (then they are delivered), so a
    second signal cannot cut short the recording of the first."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
