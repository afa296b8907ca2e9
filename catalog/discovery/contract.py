"""The one contract every discovery method keeps: what it is given and what it returns.

A method is a module under ``catalog/discovery/methods/`` with a function ``run(inputs,
**params)`` (the `Method` protocol): it receives a `MethodInputs` and returns one of three typed
results: `NodeScores` (a score per head and MLP), `EdgeScores` (a dense score per edge), or a
`SelectedCircuit` for methods that choose their own circuit (pruning methods such as ACDC).
Scores may carry a position axis: ``by_role`` maps a role name (a position of the task's
prompts, e.g. ``END`` or ``S2``) to the scores at that position alone.

The registry (`catalog.discovery.methods.METHODS`) holds one frozen `MethodSpec` per slug and
names each method's module by path, so listing methods never imports torch. Nothing outside the
registry and the method's own module knows a method by name.

No torch here: tensors appear only in annotations.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from catalog.errors import DiscoveryError, InvalidInputError
from catalog.provenance import Ablation

if TYPE_CHECKING:
    import torch

    from catalog.graph import CircuitGraph, ModelShape

#: ``(phase, done, total)``: called as a method makes progress (drawn as a bar by jobs).
Progress = Callable[[str, int, int], None]
#: ``(dataset slice, logits [B, T, V]) -> [B]``: the quantity a method explains, higher = more
#: task behaviour. The default is the task's own metric (`task_metric`).
Metric = Callable[[Any, "torch.Tensor"], "torch.Tensor"]


def number_param(value: Any, what: str) -> float:
    """A numeric method parameter (``--param threshold=0.02``), checked to be a number.

    >>> number_param(0.02, "ACDC's threshold")
    0.02
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{what} must be a number (e.g. --param threshold=0.02), got {value!r}.")
    return float(value)


def task_metric(part: Any, logits: torch.Tensor) -> torch.Tensor:
    """The dataset's own task metric (logit difference for the built-in tasks)."""
    return part.metric(logits)


class Granularity(str, Enum):
    """What a method returns: node scores, edge scores, or a circuit it selected itself."""

    NODE = "node"
    EDGE = "edge"
    CIRCUIT = "circuit"


@dataclass(frozen=True)
class MethodInputs:
    """Everything a method is given.

    `model` is a TransformerLens ``HookedTransformer``; `dataset` anything with the
    `TaskDataset` interface (clean and counterfactual tokens of one shape, slicing, and the
    per-example roles when the task names them); `metric` what the scores explain.
    """

    model: Any
    dataset: Any
    metric: Metric = task_metric
    ablation: Ablation = Ablation.COUNTERFACTUAL
    batch_size: int = 32
    progress: Progress | None = None
    #: The model's catalog shape (its name, e.g. ``catalog-default``, and revision) when the
    #: caller knows it; a bare ``HookedTransformer``'s config may not carry the name.
    shape: ModelShape | None = None

    def report(self, phase: str, done: int, total: int) -> None:
        """Tell the caller's progress callback, if any."""
        if self.progress is not None:
            self.progress(phase, done, total)


@dataclass(frozen=True)
class NodeScores:
    """A score per component id (heads ``aL.hH`` and MLPs ``mL``), all positions together.

    ``by_role[role][id]`` is the same score restricted to one position role, when the method
    resolves positions; summed over roles it gives back `values`.
    """

    values: Mapping[str, float]
    by_role: Mapping[str, Mapping[str, float]] | None = None


@dataclass(frozen=True)
class EdgeScores:
    """Dense edge scores ``values[source][destination]`` in the indices of `layout.Layout`.

    Dense lists never leave discovery: `catalog.discovery.score` turns them into a graph.
    ``by_role[role]`` is the same matrix restricted to one position role of the destination.
    """

    values: Sequence[Sequence[float]]
    by_role: Mapping[str, Sequence[Sequence[float]]] | None = None


@dataclass(frozen=True)
class SelectedCircuit:
    """A method's own choice: a scored graph whose ``in_circuit`` flags mark the circuit.

    ``details`` are recorded with the circuit's method parameters (values per node, the prompt...).
    ``metrics`` are the method's own measurements; a circuit without heads or MLPs (a feature
    circuit), which patching components cannot evaluate, is stored with these alone. ``parts``
    are per-example circuits the result aggregates (one per prompt): the job stores them with
    the same run, before the result, so the task's newest circuit stays the aggregate.
    """

    graph: CircuitGraph
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    parts: tuple[SelectedCircuit, ...] = ()


MethodResult = NodeScores | EdgeScores | SelectedCircuit


@runtime_checkable
class Method(Protocol):
    """``run(inputs, **params) -> NodeScores | EdgeScores | SelectedCircuit``."""

    def __call__(self, inputs: MethodInputs, **params: Any) -> MethodResult: ...


_RESULT_TYPES: dict[Granularity, type] = {
    Granularity.NODE: NodeScores, Granularity.EDGE: EdgeScores, Granularity.CIRCUIT: SelectedCircuit,
}


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: slug, one-line summary, what it returns, and its module.

    `module` is the dotted path of a module with a ``run`` function keeping the `Method`
    protocol; it is imported only when the method runs. `defaults` lists every parameter the
    method takes (``run`` gets them all, the defaults updated with what the caller gave).
    `exact` marks methods that measure effects by patching rather than estimating them.
    """

    slug: str
    summary: str
    granularity: Granularity
    module: str
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    exact: bool = False

    def params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults updated with `given`; an unknown parameter is an error naming the known."""
        unknown = set(given) - set(self.defaults)
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise InvalidInputError(
                f"Method {self.slug} has no parameter {', '.join(sorted(unknown))}. Its parameters: {known}."
            )
        return {**self.defaults, **given}

    def load(self) -> Method:
        """The method's ``run`` function (imports its module, and so torch)."""
        run = getattr(importlib.import_module(self.module), "run", None)
        if not callable(run):
            raise DiscoveryError(f"Method {self.slug}: module {self.module} has no run(inputs, **params).")
        return run  # type: ignore[no-any-return]

    def run(self, inputs: MethodInputs, **given: Any) -> MethodResult:
        """Run the method with its defaults updated by `given`; check it returned what it declares."""
        result = self.load()(inputs, **self.params(given))
        expected = _RESULT_TYPES[self.granularity]
        if not isinstance(result, expected):
            raise DiscoveryError(
                f"Method {self.slug} returned {type(result).__name__}, not the {expected.__name__} it declares."
            )
        return result
