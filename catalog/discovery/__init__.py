"""Circuit discovery: score every node or edge of a TransformerLens model on a task, select a
circuit, and evaluate its faithfulness. See docs/DISCOVERY.md for the conventions.

Importing this package is light (no torch); the torch-using modules load when a method runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Discovery runs many small tensor operations. OpenMP's default active wait makes idle threads
# spin, and on a machine whose cores are busy with other work that made forward passes of the
# embedded model 60x slower (2.0 s instead of 0.03 s) on 2 cores. Passive waiting costs nothing
# measurable when the machine is idle. It only takes effect if torch is not imported yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from catalog.discovery.contract import (
    EdgeScores,
    Granularity,
    Method,
    MethodInputs,
    MethodSpec,
    NodeScores,
    SelectedCircuit,
)
from catalog.discovery.methods import DEFAULT_METHOD, METHODS, get_method
from catalog.discovery.scoring import model_and_shape, score
from catalog.discovery.selection import is_node_level, select, threshold, top_k

if TYPE_CHECKING:
    from catalog.discovery.evaluation import Evaluator


def evaluator(loaded_model: Any, dataset: Any, ablation: Any = "counterfactual",
              batch_size: int = 32, progress: Any = None, positions: bool = False) -> Evaluator:
    """An `Evaluator` for circuits of this model on this dataset (imports torch); with
    `positions`, one for position-resolved circuits (`catalog.discovery.positions.RoleEvaluator`)."""
    from catalog.discovery.evaluation import Evaluator

    model, _ = model_and_shape(loaded_model)
    if positions:
        from catalog.discovery.positions import RoleEvaluator

        return RoleEvaluator(model, dataset, ablation, batch_size, progress=progress)
    return Evaluator(model, dataset, ablation, batch_size, progress=progress)


def evaluate(circuit: Any, evaluator: Evaluator, absolute: bool = True) -> dict[str, Any]:
    """Faithfulness, CPR, CMD and the faithfulness curve of a selected circuit (imports torch)."""
    from catalog.discovery.evaluation import evaluate as _evaluate

    return _evaluate(circuit, evaluator, absolute)


__all__ = ["DEFAULT_METHOD", "METHODS", "EdgeScores", "Granularity", "Method", "MethodInputs", "MethodSpec",
           "NodeScores", "SelectedCircuit", "evaluate", "evaluator", "get_method", "is_node_level",
           "model_and_shape", "score", "select", "threshold", "top_k"]
