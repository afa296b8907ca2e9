"""Queries over the catalog: compare two circuits, component reuse across tasks, find a
component, all-pairs overlap, a heatmap of the task x task matrix, and feature circuits compared
across tasks (`catalog.queries.features`).

Everything over many circuits runs as SQL aggregates in the store; only `compare` loads graphs
(the two it compares). Nothing here imports torch; matplotlib loads only to draw a heatmap.
"""

from catalog.queries.compare import Comparison, Component, Matched, compare
from catalog.queries.drawing import CircuitDrawing, drawing
from catalog.queries.features import (
    FeatureOverlap,
    FeatureReuse,
    FeatureReuseRow,
    FeatureWeight,
    HeadLevel,
    feature_overlap,
    feature_reuse,
    head_level,
    prompt_graph_id,
)
from catalog.queries.overlap import SetOverlap, Side, weighted_overlap
from catalog.queries.reuse import (
    DEFAULT_KINDS,
    ComponentReuse,
    OverlapMatrix,
    Reuse,
    find,
    pairwise_overlap,
    reuse,
    reuse_heatmap,
)
from catalog.queries.stability import ComponentStability, SeedStability, Stability, stability

__all__ = [
    "DEFAULT_KINDS",
    "CircuitDrawing",
    "Comparison",
    "Component",
    "ComponentReuse",
    "FeatureOverlap",
    "FeatureReuse",
    "FeatureReuseRow",
    "FeatureWeight",
    "HeadLevel",
    "ComponentStability",
    "Matched",
    "OverlapMatrix",
    "Reuse",
    "SeedStability",
    "SetOverlap",
    "Stability",
    "Side",
    "compare",
    "drawing",
    "feature_overlap",
    "feature_reuse",
    "find",
    "head_level",
    "pairwise_overlap",
    "prompt_graph_id",
    "reuse",
    "reuse_heatmap",
    "stability",
    "weighted_overlap",
]
