"""Queries over the catalog: compare two circuits, component reuse across tasks, find a
component, all-pairs overlap, and a heatmap of the task x task matrix.

Everything over many circuits runs as SQL aggregates in the store; only `compare` loads graphs
(the two it compares). Nothing here imports torch; matplotlib loads only to draw a heatmap.
"""

from catalog.queries.compare import (
    Comparison,
    Component,
    Matched,
    SetOverlap,
    Side,
    compare,
    weighted_overlap,
)
from catalog.queries.drawing import CircuitDrawing, drawing
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
    "find",
    "pairwise_overlap",
    "reuse",
    "reuse_heatmap",
    "stability",
    "weighted_overlap",
]
