"""What every importer shares: naming the model, and the provenance of an imported file."""

from __future__ import annotations

from typing import Any

from catalog.bounds import MAX_ID, MAX_INT, MAX_NAME, MAX_SHORT, MAX_TEXT, check_json_value, text_problem
from catalog.errors import FormatError, InvalidInputError
from catalog.formats.files import RawFile, check_finite_json
from catalog.graph import ModelShape
from catalog.provenance import Circuit, Provenance, Selection, Source
from catalog.shapes import KNOWN_SHAPES, canonical_model_name, known_shape


def shape_for_cfg(raw: RawFile, n_layers: int, n_heads: int, d_model: int | None,
                  parallel_attn_mlp: bool, model: str | None, hints: tuple[str, ...] = ()) -> ModelShape:
    """The model a file's dimensions describe: the `model` override (checked against the dims),
    else the one known model with these dimensions (a model name in `hints` breaks ties)."""
    if model:
        known = known_shape(model)
        if known is None:
            return ModelShape(canonical_model_name(model), n_layers=n_layers, n_heads=n_heads,
                              d_model=d_model, parallel_attn_mlp=parallel_attn_mlp)
        dims = (known.n_layers, known.n_heads)
        if dims != (n_layers, n_heads) or (d_model is not None and known.d_model not in (None, d_model)):
            raise InvalidInputError(
                f"--model {model} has {known.n_layers} layers, {known.n_heads} heads and d_model "
                f"{known.d_model}, but {raw.display_name} describes {n_layers} layers, {n_heads} heads"
                f"{'' if d_model is None else f' and d_model {d_model}'}. Pass the model the file was made with."
            )
        return known
    hits = [s for s in KNOWN_SHAPES.values()
            if s.n_layers == n_layers and s.n_heads == n_heads
            and (d_model is None or s.d_model == d_model)
            and s.parallel_attn_mlp == parallel_attn_mlp]
    if len(hits) > 1:
        named = {canonical_model_name(h) for h in _words(hints)}
        hits = [s for s in hits if s.name in named] or hits
    if len(hits) == 1:
        return hits[0]
    desc = f"{n_layers} layers, {n_heads} heads" + ("" if d_model is None else f", d_model {d_model}")
    which = f"several known models ({', '.join(s.name for s in hits)})" if hits else "no known model"
    raise InvalidInputError(
        f"{raw.display_name} describes a model with {desc}, which matches {which}. "
        "Pass --model NAME to say which model it is."
    )


def _words(hints: tuple[str, ...]) -> list[str]:
    import re

    out: list[str] = []
    for h in hints:
        out += [w for w in re.split(r"[_/\\\s]+", h.lower()) if w]
    return out


def shape_for_name(raw: RawFile, name: str | None, override: str | None, where: str) -> ModelShape:
    """The known model named by `override`, else by the file's own `name`; else an error."""
    for candidate, origin in ((override, "--model"), (name, where)):
        if not candidate:
            continue
        shape = known_shape(candidate)
        if shape is not None:
            return shape
        if origin == "--model":
            raise InvalidInputError(
                f"--model {candidate} is not a model with a known shape, and {raw.display_name} does "
                f"not state layer and head counts. Known: {', '.join(sorted(KNOWN_SHAPES))}."
            )
    raise InvalidInputError(
        f"Cannot tell which model {raw.display_name} was made with ({where} is "
        f"{name!r}); pass --model NAME (known: {', '.join(sorted(KNOWN_SHAPES))})."
    )


def import_provenance(raw: RawFile, source_format: str, selection: Selection,
                      method: str | None = None, method_params: dict[str, Any] | None = None,
                      notes: str | None = None) -> Provenance:
    """Provenance for a circuit read from `raw`: source=import, the file's name and SHA-256."""
    check_finite_json(method_params or {}, f"{raw.display_name}: method parameters")
    return Provenance(source=Source.IMPORT, source_format=source_format,
                      source_file=raw.display_name, source_sha256=raw.sha256, method=method,
                      method_params=method_params or {}, selection=selection, notes=notes)


def require_keys(doc: Any, keys: tuple[str, ...], raw: RawFile, fmt: str) -> dict[str, Any]:
    """Check the top level is an object holding `keys`, or say what is missing."""
    if not isinstance(doc, dict):
        raise FormatError(
            f"{raw.display_name} is not a {fmt} file: its top level is a {type(doc).__name__}, "
            "not an object."
        )
    missing = [k for k in keys if k not in doc]
    if missing:
        raise FormatError(
            f"{raw.display_name} is not a {fmt} file: it has no {', '.join(repr(k) for k in missing)} "
            "key. Check the file, or pass the right --format."
        )
    return doc


_PROVENANCE_LIMITS = {"source_format": MAX_SHORT, "method": MAX_SHORT, "source_sha256": 64,
                      "dataset_hash": 128, "metric": MAX_ID, "created_by": MAX_ID,
                      "source_file": MAX_TEXT, "citation": MAX_TEXT, "notes": MAX_TEXT}
_INT32 = 2**31 - 1  # INTEGER columns on PostgreSQL


def check_circuit(c: Circuit, where: str) -> None:
    """Refuse a circuit read from a file whose values the catalog could not store or show:
    text over its column's width or with lone surrogates / NUL, JSON values that are nested too
    deep, non-finite or wider than 64 bits, integers over their column's range. Every format
    passes through here, so PostgreSQL never sees an over-long value and SQLite never keeps one.
    """
    g = c.graph
    texts: list[tuple[str, str | None, int]] = [
        ("circuit name", c.name, MAX_NAME), ("task", c.task, MAX_ID), ("model name", g.shape.name, MAX_ID),
        ("model revision", g.shape.revision, MAX_ID),
        *(("tag", t, MAX_ID) for t in c.tags),
        *(("node id", n.id, MAX_ID) for n in g.nodes),
        *(("annotation", a.value, MAX_TEXT) for a in g.annotations),
        *(("annotation node", a.node, MAX_ID) for a in g.annotations),
        *(("annotation member", m, MAX_ID) for a in g.annotations for m in a.members),
        *((f"provenance {k}", getattr(c.provenance, k), n) for k, n in _PROVENANCE_LIMITS.items()),
        *(("library name", k, MAX_ID) for k in c.provenance.library_versions),
        *(("library version", v, MAX_ID) for v in c.provenance.library_versions.values()),
    ]
    for what, value, limit in texts:
        if value is None:
            continue
        problem = text_problem(value, limit)
        if problem:
            shown = value[:40] + ("..." if len(value) > 40 else "")
            raise FormatError(f"{where}: the {what} {shown!r} {problem}; shorten or fix it in the file.")
    for what, number in (("dataset size", c.provenance.dataset_size), ("seed", c.provenance.seed)):
        if number is not None and abs(number) > (_INT32 if what == "dataset size" else MAX_INT):
            raise FormatError(f"{where}: the {what} {number} is out of range.")
    for n in g.nodes:
        for what, number, limit in (("position", n.position, _INT32), ("feature", n.feature, MAX_INT),
                                    ("token", n.token, MAX_INT)):
            if number is not None and abs(number) > limit:
                raise FormatError(f"{where}: node {n.id[:60]!r} has {what} {number}, out of range.")
    check_json_value(c.metrics, f"{where}: metrics")
    check_json_value(c.provenance.method_params, f"{where}: method parameters")
