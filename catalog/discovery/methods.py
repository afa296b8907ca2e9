"""The discovery method registry and `score`, the one entry point that runs a method.

Light on purpose: the registry names its runners by module path, so listing methods (``catalog
discover --help``) never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from catalog.errors import InvalidInputError, suggest
from catalog.graph import CircuitGraph, ModelShape
from catalog.provenance import Ablation


class Granularity(str, Enum):
    """Whether a method scores nodes (components) or edges."""

    NODE = "node"
    EDGE = "edge"


@dataclass(frozen=True)
class MethodSpec:
    """A discovery method: slug, what it does, its granularity, runner and parameter defaults."""

    slug: str
    summary: str
    granularity: Granularity
    runner: str  # "module:function" returning node scores (node level) or dense edge scores
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


METHODS: dict[str, MethodSpec] = {
    s.slug: s
    for s in (
        MethodSpec("activation-patching",
                   "Patch each head and MLP output in turn (exact, node level, batched over components).",
                   Granularity.NODE, "catalog.discovery.patching:activation_patching", exact=True),
        MethodSpec("eap", "Edge attribution patching: every edge from one forward and one backward pass.",
                   Granularity.EDGE, "catalog.discovery.attribution:eap_scores"),
        MethodSpec("eap-ig", "EAP with integrated gradients over the input embeddings.",
                   Granularity.EDGE, "catalog.discovery.attribution:attribution_scores",
                   MappingProxyType({"steps": 5})),
        MethodSpec("edge-patching", "Patch each edge in turn (exact, slow: for validating on small models).",
                   Granularity.EDGE, "catalog.discovery.patching:edge_patching", exact=True),
    )
}


def get_method(slug: str) -> MethodSpec:
    """The method registered as `slug`, or an error listing the known ones."""
    try:
        return METHODS[slug]
    except KeyError:
        raise suggest(slug, list(METHODS), "method") from None


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


#: Runners scoring (component, role) nodes, for ``positions=True`` (see `catalog.discovery.positions`).
POSITION_RUNNERS: dict[str, str] = {
    "activation-patching": "catalog.discovery.positions:activation_patching_by_role",
    "eap": "catalog.discovery.positions:eap_by_role",
    "eap-ig": "catalog.discovery.positions:attribution_by_role",
}


def check_positions(method: str) -> None:
    """Raise a one-line error when `method` cannot score (component, role) nodes."""
    if method not in POSITION_RUNNERS:
        raise InvalidInputError(
            f"Method {method} cannot score positions. With --positions use "
            f"{', '.join(POSITION_RUNNERS)} (per role, exact edge patching would equal activation "
            "patching: patching every edge out of a node is patching the node)."
        )


def score(loaded_model: Any, dataset: Any, method: str | MethodSpec = "eap-ig",
          ablation: Ablation | str = Ablation.COUNTERFACTUAL, batch_size: int = 32,
          progress: Any = None, positions: bool = False, **params: Any) -> CircuitGraph:
    """Run a method and return the fully scored graph (nothing selected yet).

    Edge methods score every edge (node scores are the sums of outgoing edge scores);
    ``activation-patching`` scores heads and MLPs and lists every edge unscored. With
    `positions`, every (head or MLP, role) node is scored (``a1.h0@END``) and there are no edges.
    """
    from catalog.discovery.layout import Layout, edge_graph, node_graph

    spec = method if isinstance(method, MethodSpec) else get_method(method)
    try:
        ablation = Ablation(ablation)
    except ValueError:
        raise suggest(str(ablation), [a.value for a in Ablation], "ablation") from None
    model, shape = model_and_shape(loaded_model)
    if positions:
        from catalog.discovery.positions import role_graph

        check_positions(spec.slug)
        module, func = POSITION_RUNNERS[spec.slug].split(":")
        run = getattr(importlib.import_module(module), func)
        Layout.for_model(model).check_shape(shape)
        return role_graph(shape, run(model, dataset, ablation=ablation, batch_size=batch_size,
                                     progress=progress, **spec.params(params)))
    module, func = spec.runner.split(":")
    run = getattr(importlib.import_module(module), func)
    result = run(model, dataset, ablation=ablation, batch_size=batch_size, progress=progress,
                 **spec.params(params))
    layout = Layout.for_model(model)
    if spec.granularity is Granularity.NODE:
        return node_graph(shape, layout, result)
    return edge_graph(shape, layout, result)
