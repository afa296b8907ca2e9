"""The format registry, format detection, and the public read / write / import functions."""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from catalog.atomic import atomic_output, check_target
from catalog.errors import CatalogError, FormatError, InvalidInputError, suggest
from catalog.formats import catalog_json, circuit_tracer, eap_ig, graphml
from catalog.formats.common import check_circuit
from catalog.formats.files import RawFile, read_file
from catalog.formats.stream import JsonFile
from catalog.provenance import Circuit

if TYPE_CHECKING:
    from catalog.store import Added, Catalog

_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
Reader = Callable[..., list[Circuit]]
Writer = Callable[[Circuit, Any], None]


@dataclass(frozen=True)
class FormatSpec:
    """One file format: its slug, what it is, and its reader and writer (None when absent)."""

    slug: str
    description: str
    extensions: tuple[str, ...]
    reader: Reader | None
    writer: Writer | None = None
    binary_writer: bool = False  # the writer takes a bytes handle
    writes_selection: bool = False  # the writer takes all_edges (else it writes every edge)
    is_json: bool = True


FORMATS: dict[str, FormatSpec] = {
    s.slug: s
    for s in (
        FormatSpec("catalog-json", "circuit-catalog's own versioned JSON (exact round trip)",
                   (".json",), catalog_json.read, catalog_json.write),
        FormatSpec("eap-ig", "EAP-IG Graph JSON, current and legacy schema (also MIB submissions)",
                   (".json",), eap_ig.read, eap_ig.write),
        FormatSpec("circuit-tracer", "circuit-tracer / Neuronpedia attribution-graph JSON",
                   (".json",), circuit_tracer.read, circuit_tracer.write),
        FormatSpec("graphml", "GraphML written by circuit-catalog (Gephi, Cytoscape, networkx)",
                   (".graphml", ".xml"), graphml.read, graphml.write, binary_writer=True, writes_selection=True,
                   is_json=False),
    )
}
ALIASES = {"json": "catalog-json", "neuronpedia": "circuit-tracer", "mib": "eap-ig"}


def get_format(slug: str) -> FormatSpec:
    """The format named `slug` (aliases: json, neuronpedia, mib), or an error naming the known ones."""
    key = ALIASES.get(slug.strip().lower(), slug.strip().lower())
    if key not in FORMATS:
        raise suggest(slug, list(FORMATS) + list(ALIASES), "format")
    return FORMATS[key]


def detect_format(raw: RawFile, doc: Any | None) -> str:
    """The format slug of an already-read file, from its content (the extension only helps GraphML)."""
    if doc is None:
        return "graphml"
    if isinstance(doc, dict):
        keys = set(doc)
        if {"cfg", "nodes", "edges"} <= keys:
            return "eap-ig"
        if {"metadata", "nodes", "links"} <= keys:
            return "circuit-tracer"
        if "schema_version" in keys and ({"model", "nodes"} <= keys or "circuits" in keys) \
                or doc.get("format") == catalog_json.MARKER:
            return "catalog-json"
    raise FormatError(
        f"Cannot tell the format of {raw.display_name}: it is JSON but not a catalog circuit "
        "(schema_version, model, nodes), an EAP-IG graph (cfg, nodes, edges) or a circuit-tracer "
        f"graph (metadata, nodes, links). Pass --format ({', '.join(FORMATS)}) if you know it."
    )


def _looks_like_xml(raw: RawFile) -> bool:
    return raw.first_char() == b"<"


# Top-level members that hold a file's records: streamed by the readers, never built whole.
_RECORDS = frozenset({"nodes", "edges", "links", "circuits", "annotations"})


def read_circuits(path: str | os.PathLike[str], format: str | None = None, model: str | None = None,
                  task: str | None = None, name: str | None = None,
                  top_k: int | None = None) -> list[Circuit]:
    """Read every circuit in a file, fully validated, without touching any catalog.

    `format` forces a format (else it is detected from the content); `model`, `task` and `name`
    name what the file does not say (or override it); `top_k` re-selects the stored circuit as
    the top-k edges by |score| and records that rule.
    """
    try:
        return _read(path, format, model, task, name, top_k)
    except CatalogError as exc:
        # File content is echoed in messages; keep each one a single, bounded line.
        text = str(exc)
        flat = _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
        if len(flat) > 800:
            flat = flat[:500] + " ... " + flat[-250:]
        if flat == text:
            raise
        raise type(exc)(flat) from None


def _read(path: str | os.PathLike[str], format: str | None, model: str | None, task: str | None,
          name: str | None, top_k: int | None) -> list[Circuit]:
    spec = get_format(format) if format else None
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidInputError(f"--top-k must be a positive integer, got {top_k!r}.")
    raw = read_file(path)
    xml = _looks_like_xml(raw)
    if spec is not None and spec.is_json == xml:
        kind = "XML" if xml else "JSON"
        raise FormatError(
            f"{raw.display_name} is {kind}, so it cannot be {spec.slug}; drop --format to detect "
            "the format, or pass the right one."
        )
    source: JsonFile | None = None
    if not xml:
        if raw.first_char() not in (b"{", b"["):
            raise FormatError(
                f"{raw.display_name} is neither JSON nor GraphML; import a circuit JSON or GraphML "
                "file (gzip-compressed is fine)."
            )
        source = JsonFile(raw)
        source.head(streamed=_RECORDS)
    slug = spec.slug if spec else detect_format(raw, None if source is None else source.top)
    reader = FORMATS[slug].reader
    if reader is None:
        raise FormatError(f"Format {slug} cannot be imported.")
    circuits = reader(raw, source, model=model, task=task, name=name, top_k=top_k)
    if not circuits:
        raise FormatError(f"{raw.display_name} holds no circuit.")
    for i, c in enumerate(circuits):
        check_circuit(c, raw.display_name if len(circuits) == 1 else f"{raw.display_name} circuit {i + 1}")
    return circuits


def _open_out(path_or_file: str | os.PathLike[str] | IO[Any], binary: bool,
              gz: bool = False) -> tuple[IO[Any], bool]:
    if hasattr(path_or_file, "write"):
        fh: IO[Any] = path_or_file  # type: ignore[assignment]
        if binary and isinstance(fh, io.TextIOBase):
            return _TextToBytes(fh), False
        if not binary and not isinstance(fh, io.TextIOBase):
            return io.TextIOWrapper(fh, encoding="utf-8", write_through=True), False  # type: ignore[arg-type]
        return fh, False
    p = Path(path_or_file)  # type: ignore[arg-type]
    try:
        out: IO[Any]
        if gz:
            out = gzip.open(p, "wb") if binary else gzip.open(p, "wt", encoding="utf-8")  # type: ignore[assignment]
        else:
            out = p.open("wb") if binary else p.open("w", encoding="utf-8")
        return out, True
    except OSError as exc:
        raise InvalidInputError(f"Cannot write {p}: {exc.strerror or exc}.") from None


class _TextToBytes(io.RawIOBase):
    """Lets a bytes writer (networkx GraphML) write into a text handle."""

    def __init__(self, fh: IO[str]) -> None:
        self._fh = fh

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._fh.write(bytes(b).decode("utf-8"))
        return len(b)


def write_circuit(circuit: Circuit, format: str, path_or_file: str | os.PathLike[str] | IO[Any],
                  all_edges: bool = False) -> None:
    """Write `circuit` as `format` (graphml, json, eap-ig) to a path (``.gz`` compresses) or an
    open file. A path is written completely or not at all.

    GraphML holds only the circuit unless `all_edges`; the other formats always keep every scored
    edge (their readers expect the whole graph with in-circuit flags)."""
    spec = get_format(format)
    if spec.writer is None:
        writable = [s for s, f in FORMATS.items() if f.writer]
        raise InvalidInputError(f"Format {spec.slug} can be imported but not exported; use one of "
                                f"{', '.join(writable)}.")
    if spec.writes_selection:
        circuit_writer = spec.writer  # the selection-aware writer
        spec = replace(spec, writer=lambda c, fh: circuit_writer(c, fh, all_edges=all_edges))
    if hasattr(path_or_file, "write"):
        fh, _ = _open_out(path_or_file, spec.binary_writer)
        spec.writer(circuit, fh)
        if fh is not path_or_file:  # a wrapper made here: flush it, leave the caller's file open
            fh.flush()
            if isinstance(fh, io.TextIOWrapper):
                fh.detach()
        return
    target = check_target(path_or_file)  # type: ignore[arg-type]
    with atomic_output(target) as raw_out:
        sink: IO[Any] = raw_out
        zipped: IO[Any] | None = (gzip.GzipFile(fileobj=raw_out, mode="wb", filename="")  # type: ignore[assignment]
                                  if target.name.lower().endswith(".gz") else None)
        if zipped is not None:
            sink = zipped
        if spec.binary_writer:
            spec.writer(circuit, sink)
        else:
            text = io.TextIOWrapper(sink, encoding="utf-8", write_through=True)  # type: ignore[arg-type]
            spec.writer(circuit, text)
            text.flush()
            text.detach()
        if zipped is not None:
            zipped.close()


def import_file(cat: Catalog, path: str | os.PathLike[str], format: str | None = None,
                model: str | None = None, task: str | None = None, name: str | None = None,
                tags: Iterable[str] = (), top_k: int | None = None,
                allow_duplicate: bool = False) -> list[Added]:
    """Read and validate every circuit in `path`, then add them all to `cat` in one transaction.

    All or none: a failed read adds nothing, and a failed or interrupted write (Ctrl-C, SIGTERM)
    rolls every circuit of the file back. A circuit already in the catalog (same content, e.g.
    the same file imported again) is not stored twice: its `Added` names the existing id, with
    ``duplicate=True``. `allow_duplicate` stores it again anyway.
    """
    circuits = read_circuits(path, format=format, model=model, task=task, name=name, top_k=top_k)
    extra = tuple(t for t in tags if t)
    if len(circuits) > 1 and name:
        circuits = [replace(c, name=f"{name} ({i + 1})") for i, c in enumerate(circuits)]
    circuits = [replace(c, tags=tuple(dict.fromkeys(c.tags + extra))) if extra else c for c in circuits]
    return cat.add_many(circuits, allow_duplicate=allow_duplicate)
