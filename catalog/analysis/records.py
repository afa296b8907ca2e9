"""What the analyses return and the store keeps: head roles, interventions, knockout and repair.

Plain pydantic values (no torch, no database state), so the store can write them, the CLI can
print them and ``--json`` dumps them with ``model_dump(mode="json")``.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

from catalog.tasks.base import format_task_ref


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class AnalysisKind(str, Enum):
    """What a stored analysis of a circuit is."""

    ROLES = "roles"
    INTERVENTION = "intervention"


class DatasetRef(_Record):
    """The dataset an analysis measured on: task (with options), size, seed and hash."""

    task: str
    options: dict[str, Any] = {}
    n: int
    seed: int
    dataset_hash: str

    @property
    def name(self) -> str:
        """The task as the command line names it, options included.

        >>> DatasetRef(task="ioi", options={"variant": "third-name", "order": "ABC"}, n=8, seed=0,
        ...            dataset_hash="").name
        'ioi:variant=third-name,order=ABC'
        """
        return format_task_ref(self.task, self.options)


class Composition(_Record):
    """Elhage et al.'s composition score of an upstream head's OV into this head's q, k or v."""

    upstream: str
    mode: str  # "q", "k" or "v"
    score: float
    baseline: float  # the mean score of random matrices of the same shapes


class HeadEvidence(_Record):
    """Every number a head's role label is assigned from (see `catalog.analysis.roles`).

    ``attention[q][k]``: mean attention from role q to role k; ``dla``: mean direct logit
    attribution onto answer minus wrong answer at END; ``dla_fraction``: ``dla`` over the clean
    mean metric; ``copy_score`` / ``negative_copy_score``: Wang et al.'s OV copying scores.
    """

    attention: dict[str, dict[str, float]]
    dla: float
    dla_fraction: float | None
    copy_score: float | None
    negative_copy_score: float | None
    composition: tuple[Composition, ...] = ()


class HeadRole(_Record):
    """A head of a circuit with the role label its evidence supports."""

    node: str
    label: str
    evidence: HeadEvidence


class RoleReport(_Record):
    """Measured roles of a circuit's heads on a task's data."""

    circuit_id: int | None
    model: str
    dataset: DatasetRef
    metric_clean: float
    roles: tuple[str, ...]  # the position roles attention is reported over
    heads: tuple[HeadRole, ...]
    thresholds: dict[str, float]
    id: int | None = None
    created_at: datetime | None = None


class Outcome(_Record):
    """Mean task metric and top-1 accuracy of one run over a dataset."""

    metric: float
    accuracy: float


class InterventionResult(_Record):
    """A model edited by ablations, patches and scalings, measured before and after."""

    circuit_id: int | None
    model: str
    dataset: DatasetRef
    ablation: str
    ablate: tuple[str, ...] = ()
    patch: tuple[str, ...] = ()
    patch_from: str | None = None
    scale: dict[str, float] = {}
    before: Outcome
    after: Outcome
    id: int | None = None
    created_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def metric_change(self) -> float:
        """Relative change of the mean metric: (after - before) / |before|."""
        return (self.after.metric - self.before.metric) / abs(self.before.metric) if self.before.metric else 0.0


class DamageCell(_Record):
    """One knocked-out circuit measured on one task."""

    knocked_out: str
    measured: str
    components: tuple[str, ...]
    before: Outcome
    after: Outcome
    metric_drop: float  # (before - after) / |before|
    accuracy_drop: float  # before - after, in accuracy points (fractions of 1)


class KnockoutMatrix(_Record):
    """Task x task damage: rows are the circuits ablated, columns the tasks measured."""

    model: str
    ablation: str
    n: int
    seed: int
    tasks: tuple[str, ...]
    circuits: dict[str, int]  # task -> the circuit id whose components were ablated
    cells: tuple[DamageCell, ...]
    controls: tuple[str, ...] = ()  # rows of random head sets ("random-3"), if asked for

    def cell(self, knocked_out: str, measured: str) -> DamageCell:
        return next(c for c in self.cells if c.knocked_out == knocked_out and c.measured == measured)


class SteeredHead(_Record):
    """A candidate head: its END attention on the wrong-answer tokens of both tasks, and the
    failing task's accuracy with this head alone pointed at its wrong answers."""

    node: str
    working: dict[str, float]  # mean END attention per wrong-answer role on the working task
    failing: dict[str, float]  # the same on the failing task, before steering
    accuracy: float  # on the failing task, this head alone steered


class RepairResult(_Record):
    """Merullo-style repair: heads chosen on a working task, pointed at a failing task's wrong answers."""

    model: str
    failing: DatasetRef
    working: DatasetRef
    steered_to: tuple[str, ...]  # the failing task's roles the steered heads attend, uniformly
    candidates: tuple[SteeredHead, ...]
    chosen: tuple[str, ...]
    before: Outcome
    after: Outcome
    working_outcome: Outcome
