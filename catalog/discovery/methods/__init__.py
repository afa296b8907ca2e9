"""The discovery method registry: one frozen `MethodSpec` per slug, one module per method.

Light on purpose: each spec names its module by path, so listing methods (``catalog discover
--help``) never imports torch. To add a method, write ``catalog/discovery/methods/<name>.py``
with ``run(inputs: MethodInputs, **params) -> NodeScores | EdgeScores | SelectedCircuit`` and
add its spec below (docs/DISCOVERY.md, "Adding a method").
"""

from __future__ import annotations

from types import MappingProxyType

from catalog.discovery.contract import Granularity, MethodSpec
from catalog.errors import suggest

_HERE = __name__

METHODS: dict[str, MethodSpec] = {
    s.slug: s
    for s in (
        MethodSpec("activation-patching",
                   "Patch each head and MLP output in turn (exact, node level, batched over components).",
                   Granularity.NODE, f"{_HERE}.activation_patching", exact=True),
        MethodSpec("eap", "Edge attribution patching: every edge from one forward and one backward pass.",
                   Granularity.EDGE, f"{_HERE}.eap"),
        MethodSpec("eap-ig", "EAP with integrated gradients over the input embeddings.",
                   Granularity.EDGE, f"{_HERE}.eap_ig", MappingProxyType({"steps": 5})),
        MethodSpec("relp", "Relevance patching: EAP with LRP propagation coefficients in place of gradients.",
                   Granularity.EDGE, f"{_HERE}.relp"),
        MethodSpec("path-patching",
                   "Path patching: grow a circuit back from the logits, senders to logits, then to the q/k/v "
                   "of the components found (selects its own circuit).",
                   Granularity.CIRCUIT, f"{_HERE}.path_patching",
                   MappingProxyType({"threshold": 0.05, "freeze": "wang"}), exact=True),
        MethodSpec("acdc", "ACDC: prune edges in order from the logits while KL or the task metric moves less "
                           "than a threshold (selects its own circuit).",
                   Granularity.CIRCUIT, f"{_HERE}.acdc", MappingProxyType({"threshold": 0.01, "metric": "kl"}),
                   exact=True),
        MethodSpec("edge-patching", "Patch each edge in turn (exact, slow: for validating on small models).",
                   Granularity.EDGE, f"{_HERE}.edge_patching", exact=True),
        MethodSpec("attribution-graph",
                   "Attribution graph through transcoders (Ameisen et al. 2025): direct effects between "
                   "features, error nodes, embeddings and the target logit in the frozen replacement model, "
                   "pruned by influence; a task's prompts aggregate into its feature circuit.",
                   Granularity.CIRCUIT, f"{_HERE}.attribution_graph",
                   MappingProxyType({"transcoders": None, "prompts": 16, "node_threshold": 0.8,
                                     "edge_threshold": 0.98, "min_fraction": 0.25,
                                     "max_feature_nodes": None})),
    )
}

#: The method a job runs when none is named.
DEFAULT_METHOD = "eap-ig"


def get_method(slug: str) -> MethodSpec:
    """The method registered as `slug`, or an error listing the known ones."""
    try:
        return METHODS[slug]
    except KeyError:
        raise suggest(slug, list(METHODS), "method") from None


__all__ = ["DEFAULT_METHOD", "METHODS", "get_method"]
