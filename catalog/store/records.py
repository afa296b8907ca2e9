"""What the store returns besides circuits: listings, runs and aggregate rows (pydantic).

These are plain values with no database state attached, so the CLI can print them and
``--json`` can dump them with ``model_dump(mode="json")``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from catalog.provenance import Provenance


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Added(_Record):
    """What `Catalog.add_many` did with one circuit: stored it as `id`, or found it already
    stored as `id` (``duplicate=True``; nothing was added)."""

    id: int
    duplicate: bool = False


class CircuitSummary(_Record):
    """One line of `Catalog.circuits`: sizes count the circuit's nodes and edges, not every scored one."""

    id: int
    name: str | None
    model: str
    task: str
    method: str | None
    source: str
    n_nodes: int
    n_edges: int
    n_heads: int
    n_mlps: int
    n_features: int
    n_scored_edges: int
    created_at: datetime
    added_at: datetime
    tags: tuple[str, ...] = ()
    metrics: dict[str, Any] = {}
    run_id: int | None = None


class SchemaStatus(_Record):
    """Where a database's schema stands: its revision, the newest one, and (after an upgrade)
    the revision it started from."""

    url: str
    current: str | None
    head: str
    up_to_date: bool
    previous: str | None = None


class RunRecord(_Record):
    """A discovery run: status (running, done, failed, interrupted), timings, error or reason,
    owner (host, pid), last heartbeat, and the circuit it stored.

    ``stale`` is True for a ``running`` run whose process is gone (see `catalog.store.runs`);
    ``stale_reason`` says how that was told. `state` is what to show: ``stale`` or the status."""

    id: int
    model: str
    task: str
    status: str
    provenance: Provenance
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    error: str | None
    circuit_ids: tuple[int, ...] = ()
    host: str | None = None
    pid: int | None = None
    heartbeat_at: datetime | None = None
    stale: bool = False
    stale_reason: str | None = None

    @property
    def state(self) -> str:
        return "stale" if self.stale else self.status


class ComponentCount(_Record):
    """How many tasks and circuits on one model contain a component (as a circuit member)."""

    model: str
    component: str
    kind: str
    n_tasks: int
    n_circuits: int
    tasks: tuple[str, ...]


class TaskOverlap(_Record):
    """Task x task shared-component counts over the newest circuit per task on one model.

    ``sizes[t]`` is the number of components in task t's circuit; ``shared[t][u]`` the number
    in both t's and u's (``shared[t][t] == sizes[t]``); ``circuits[t]`` the circuit id used.
    """

    model: str
    tasks: tuple[str, ...]
    circuits: dict[str, int]
    sizes: dict[str, int]
    shared: dict[str, dict[str, int]]


class FindHit(_Record):
    """A circuit containing a component, with the node's id, role and score there."""

    circuit_id: int
    circuit_name: str | None
    model: str
    task: str
    method: str | None
    node_id: str
    score: float | None
    role: str | None
    label: str | None


class Membership(_Record):
    """The member component ids of each circuit, for all-pairs overlap without loading graphs."""

    model: str | None
    circuits: dict[int, frozenset[str]]
    tasks: dict[int, str]
