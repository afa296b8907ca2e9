"""Provenance and the circuit record: what is stored with every circuit, and why.

Every circuit carries where it came from (a discovery run, an imported file, a published paper),
how it was selected from the scored graph, and the versions of the libraries that made it.
Circuits are immutable: a rerun is a new record.
"""

from __future__ import annotations

import getpass
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog.graph import CircuitGraph

#: The tag of the per-example circuits a run stores beside the circuit they aggregate (e.g. each
#: prompt's attribution graph beside the task's feature circuit).
PART_TAG = "part"


class Source(str, Enum):
    """How a circuit entered the catalog."""

    DISCOVERY = "discovery"
    IMPORT = "import"
    PUBLISHED = "published"


class Ablation(str, Enum):
    """What replaces a component's activation when it is patched out."""

    COUNTERFACTUAL = "counterfactual"
    MEAN = "mean"
    ZERO = "zero"


class SelectionRule(str, Enum):
    """How the stored circuit was chosen from the scored graph."""

    TOP_K = "top-k"
    THRESHOLD = "threshold"
    FAITHFULNESS = "faithfulness"
    GIVEN = "given"  # the file's own in-graph flags, or a hand-specified circuit


class Selection(BaseModel):
    """The selection rule, its parameter, and whether scores were ranked by absolute value."""

    model_config = ConfigDict(frozen=True)

    rule: SelectionRule
    value: float | None = None
    absolute: bool = True
    #: top-k only: the k edges were grown backwards from the logits, each one adjacent to the
    #: circuit so far (EAP-IG's greedy selection), instead of the k best edges anywhere.
    greedy: bool = False

    @model_validator(mode="after")
    def _greedy_is_top_k(self) -> Selection:
        if self.greedy and self.rule is not SelectionRule.TOP_K:
            raise ValueError("greedy selection goes with the top-k rule (--top-k K --greedy).")
        return self

    def describe(self) -> str:
        """Example:

        >>> Selection(rule="top-k", value=100).describe()
        'top-k 100 by |score|'
        >>> Selection(rule="top-k", value=10, greedy=True).describe()
        'greedy top-k 10 by |score|'
        """
        if self.rule is SelectionRule.GIVEN:
            return "given"
        v = "" if self.value is None else f" {self.value:g}"
        how = "greedy " if self.greedy else ""
        return f"{how}{self.rule.value}{v} by {'|score|' if self.absolute else 'signed score'}"


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape a result (read without importing them)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("circuit-catalog", "torch", "transformer-lens", "transformers", "sqlalchemy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


class Provenance(BaseModel):
    """Where a circuit came from. Unknown fields stay None rather than being guessed."""

    model_config = ConfigDict(frozen=True)

    source: Source
    source_format: str | None = None  # importer name, e.g. "eap-ig"
    source_file: str | None = None
    source_sha256: str | None = None
    method: str | None = None  # discovery method slug, or the method named by the file
    method_params: dict[str, Any] = Field(default_factory=dict)
    dataset_hash: str | None = None
    dataset_size: int | None = None
    seed: int | None = None
    metric: str | None = None
    ablation: Ablation | None = None
    selection: Selection | None = None
    library_versions: dict[str, str] = Field(default_factory=library_versions)
    created_by: str = Field(default_factory=_user)
    created_at: datetime = Field(default_factory=_now)
    citation: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Circuit:
    """One catalog entry: a graph (model shape included), its task and its provenance.

    ``id`` is None until the store assigns one. ``metrics`` holds evaluation results such as
    ``faithfulness``, ``cpr``, ``cmd`` and ``faithfulness_curve`` (a list of [fraction, f]).
    """

    graph: CircuitGraph
    task: str
    provenance: Provenance
    name: str | None = None
    tags: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    run_id: int | None = None

    @property
    def model(self) -> str:
        return self.graph.shape.name
