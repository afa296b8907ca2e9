"""`score`: run a registered method and return its result as a fully scored `CircuitGraph`.

The one place a method's typed result (`NodeScores`, `EdgeScores`, `SelectedCircuit`) becomes a
graph, so callers (jobs, benchmarks, the CLI) never need to know which method ran.
"""

from __future__ import annotations

from typing import Any

from catalog.discovery.contract import (
    EdgeScores,
    MethodInputs,
    MethodResult,
    MethodSpec,
    NodeScores,
    SelectedCircuit,
    task_metric,
)
from catalog.discovery.methods import get_method
from catalog.errors import DiscoveryError, InvalidInputError, suggest
from catalog.graph import CircuitGraph, ModelShape
from catalog.provenance import Ablation


def model_and_shape(loaded_model: Any) -> tuple[Any, ModelShape]:
    """(HookedTransformer, ModelShape) from a `LoadedModel` or a bare `HookedTransformer`."""
    model = getattr(loaded_model, "model", loaded_model)
    shape = getattr(loaded_model, "shape", None)
    if shape is None:
        cfg = getattr(model, "cfg", None)
        if cfg is None:
            raise InvalidInputError("Discovery needs a LoadedModel or a TransformerLens HookedTransformer.")
        shape = ModelShape(cfg.model_name or "custom", cfg.n_layers, cfg.n_heads, cfg.d_model,
                           parallel_attn_mlp=bool(cfg.parallel_attn_mlp))
    return model, shape


def inputs_for(loaded_model: Any, dataset: Any, ablation: Ablation | str = Ablation.COUNTERFACTUAL,
               batch_size: int = 32, progress: Any = None, metric: Any = None) -> MethodInputs:
    """A method's `MethodInputs`, the ablation checked (an unknown one suggests the known)."""
    try:
        ablation = Ablation(ablation)
    except ValueError:
        raise suggest(str(ablation), [a.value for a in Ablation], "ablation") from None
    model, shape = model_and_shape(loaded_model)
    return MethodInputs(model, dataset, metric or task_metric, ablation, batch_size, progress, shape)


def result_graph(shape: ModelShape, model: Any, result: MethodResult) -> CircuitGraph:
    """The scored graph of a method's result (nothing selected, unless the method selected)."""
    from catalog.discovery.layout import Layout, edge_graph, node_graph

    if isinstance(result, SelectedCircuit):
        # A method sees only the HookedTransformer, whose cfg may not carry the model's catalog
        # name or revision; the caller's shape is the one to store.
        g = result.graph
        return g if g.shape == shape else CircuitGraph(shape, g.nodes, g.edges, g.annotations)
    layout = Layout.for_model(model)
    if isinstance(result, NodeScores):
        return node_graph(shape, layout, dict(result.values))
    if isinstance(result, EdgeScores):
        return edge_graph(shape, layout, [list(row) for row in result.values])
    raise DiscoveryError(f"A method returned {type(result).__name__}, which is not a method result.")


#: Functions scoring (component, role) nodes, for ``positions=True`` (see
#: `catalog.discovery.positions`), by method slug.
POSITION_RUNNERS: dict[str, str] = {
    "activation-patching": "catalog.discovery.positions:activation_patching_by_role",
    "eap": "catalog.discovery.positions:eap_by_role",
    "eap-ig": "catalog.discovery.positions:attribution_by_role",
}


def check_positions(method: str) -> None:
    """Raise a one-line error when `method` cannot score (component, role) nodes."""
    if method not in POSITION_RUNNERS:
        why = (" Per role, exact edge patching is activation patching (patching every edge out of a "
               "node is patching the node)." if method == "edge-patching" else "")
        raise InvalidInputError(
            f"Method {method} cannot score positions. With --positions use {', '.join(POSITION_RUNNERS)}.{why}"
        )


def score(loaded_model: Any, dataset: Any, method: str | MethodSpec = "eap-ig",
          ablation: Ablation | str = Ablation.COUNTERFACTUAL, batch_size: int = 32,
          progress: Any = None, metric: Any = None, positions: bool = False, **params: Any) -> CircuitGraph:
    """Run a method and return the fully scored graph (see `score_result`)."""
    return score_result(loaded_model, dataset, method, ablation, batch_size, progress, metric, positions,
                        **params)[0]


def score_result(loaded_model: Any, dataset: Any, method: str | MethodSpec = "eap-ig",
                 ablation: Ablation | str = Ablation.COUNTERFACTUAL, batch_size: int = 32,
                 progress: Any = None, metric: Any = None, positions: bool = False,
                 **params: Any) -> tuple[CircuitGraph, MethodResult | None]:
    """Run a method; return the fully scored graph (nothing selected yet) and the method's own
    result (None for position-resolved scoring), whose details, metrics and parts a
    `SelectedCircuit` may carry.

    Edge methods score every edge (node scores are the sums of outgoing edge scores); node
    methods score heads and MLPs and list every edge unscored; a method that selects its own
    circuit returns it with its ``in_circuit`` flags set. With `positions`, every (head or MLP,
    role) node is scored (``a1.h0@END``) and the graph has no edges.
    """
    spec = method if isinstance(method, MethodSpec) else get_method(method)
    inputs = inputs_for(loaded_model, dataset, ablation, batch_size, progress, metric)
    _, shape = model_and_shape(loaded_model)
    if positions:
        import importlib

        from catalog.discovery.layout import Layout
        from catalog.discovery.positions import role_graph

        check_positions(spec.slug)
        if metric is not None:
            raise InvalidInputError("Position-resolved scoring uses the task's own metric; drop the metric.")
        module, func = POSITION_RUNNERS[spec.slug].split(":")
        run = getattr(importlib.import_module(module), func)
        Layout.for_model(inputs.model).check_shape(shape)
        return role_graph(shape, run(inputs.model, dataset, ablation=inputs.ablation, batch_size=batch_size,
                                     progress=progress, **spec.params(params))), None
    result = spec.run(inputs, **params)
    return result_graph(shape, inputs.model, result), result
