"""The data a circuit page draws: the circuit as `show --attention --json` gives it, laid out in
layers, and, against a second circuit, with each component marked shared or exclusive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from catalog.layered import Layout, compare_layout, layout
from catalog.queries.compare import compare_models
from catalog.queries.overlap import Side, side_of
from catalog.views import CircuitDetail

if TYPE_CHECKING:
    from catalog.store import Catalog


class CircuitDrawing(BaseModel):
    """A circuit with its layered layout; `other` is the circuit it is drawn against, if any."""

    model_config = ConfigDict(frozen=True)

    circuit: CircuitDetail
    layout: Layout
    other: Side | None = None


def drawing(cat: Catalog, ref: str | int, model: str | None = None,
            compare: str | int | None = None) -> CircuitDrawing:
    """Circuit `ref` laid out for drawing; with `compare`, the union of both circuits with each
    node and edge marked ``shared``, ``only_a`` or ``only_b`` (references as in `compare`)."""
    if compare is None:
        circuit = cat.get(cat.resolve(ref, model))
        return CircuitDrawing(circuit=CircuitDetail.of(circuit, cat.attention(circuit.id)),
                              layout=layout(circuit.graph))
    a, b = compare_models(cat, ref, compare, model)
    return CircuitDrawing(circuit=CircuitDetail.of(a), layout=compare_layout(a.graph, b.graph), other=side_of(b))
