"""Layered drawings of circuits (matplotlib): `draw` one circuit, or two with ``compare=``.

The coordinates come from `catalog.layered` (input at the bottom, one row per layer, logits at
the top). Here they are only rendered:

- node colour: the node's role when it has one (a legend lists the roles), else its kind; in a
  comparison, shared / only in A / only in B;
- node size: |score| (a node without a score takes its largest circuit edge's |score|);
- edge width: |score|; edge colour: its sign (blue positive, red negative, grey unscored);
- edge style: the head input it feeds: q dashed, k dotted, v dash-dot, anything else solid.
  Edges between two nodes of one row (a head feeding its layer's MLP) are drawn as arcs.

The file type follows the suffix (.svg, .png, .pdf); the file is written whole or not at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.errors import InvalidInputError
from catalog.layered import Layout, PlacedNode, compare_layout, layout

if TYPE_CHECKING:
    from catalog.graph import CircuitGraph
    from catalog.provenance import Circuit

SUFFIXES = (".svg", ".png", ".pdf")
QKV_STYLES = {"q": (0, (5, 3)), "k": (0, (1, 2)), "v": (0, (6, 2, 1, 2)), None: "solid"}
KIND_COLOURS = {"input": "#7f7f7f", "attention": "#4c72b0", "mlp": "#dd8452", "feature": "#55a868",
                "error": "#c44e52", "logits": "#333333"}
SIDE_COLOURS = {"shared": "#8172b3", "only_a": "#4c72b0", "only_b": "#dd8452"}
SIGN_COLOURS = {1: "#2b6cb0", -1: "#c53030", 0: "#a0a0a0"}
_ROLE_PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf",
                 "#17becf", "#bcbd22", "#666666", "#1b9e77", "#d95f02")


def draw(circuit: Circuit | CircuitGraph, path: str | os.PathLike[str],
         compare: Circuit | CircuitGraph | None = None, title: str | None = None,
         all_nodes: bool = False, dpi: int = 130) -> Path:
    """Draw a circuit (against `compare`, when given) to `path` (.svg, .png or .pdf); return it.

    `all_nodes` draws every scored node and edge, not only the circuit; `dpi` sets PNG detail."""
    out = Path(path)
    if out.suffix.lower() not in SUFFIXES:
        raise InvalidInputError(f"Cannot draw to '{out.name}': give a file name ending in "
                                f"{', '.join(SUFFIXES)}.")
    graph, other = _graph(circuit), _graph(compare) if compare is not None else None
    placed = compare_layout(graph, other) if other is not None else layout(graph, all_nodes=all_nodes)
    if not placed.nodes:
        raise InvalidInputError("The circuit has no nodes to draw.")
    plt = _pyplot()
    # SVG text stays text (searchable, and the tests read the node names back)
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "circuit-catalog"}):
        figure = render(placed, title=title if title is not None else _title(circuit, compare))
        try:
            _save_atomically(figure, out, dpi)
        finally:
            plt.close(figure)
    return out


def _graph(c: Circuit | CircuitGraph) -> CircuitGraph:
    return getattr(c, "graph", c)  # type: ignore[no-any-return]


def _title(c: Circuit | CircuitGraph, other: Circuit | CircuitGraph | None) -> str:
    def name(x: Circuit | CircuitGraph) -> str:
        if hasattr(x, "task"):
            ident = f"#{x.id} " if x.id is not None else ""
            return f"{ident}{x.name or x.task} ({x.task}, {x.model})"
        return x.shape.name

    return name(c) if other is None else f"A: {name(c)}   vs   B: {name(other)}"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise InvalidInputError("Drawing needs matplotlib: pip install 'circuit-catalog[plot]'.") from None
    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def render(placed: Layout, title: str = "") -> Any:
    """A matplotlib Figure of a placed circuit (the caller saves and closes it)."""
    plt = _pyplot()
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    xs = [n.x for n in placed.nodes]
    width = max(xs) - min(xs) + 1.0
    n_rows = placed.n_layers + 2
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.55 * width + 3.0), 18.0), min(max(4.0, 0.9 * n_rows + 1.5), 14.0)))
    where = {n.id: n for n in placed.nodes}
    top_edge = max((abs(e.score) for e in placed.edges if e.score is not None), default=0.0) or 1.0
    straight: dict[tuple[Any, str], tuple[list[Any], list[float]]] = {}
    for e in placed.edges:
        a, b = where[e.src], where[e.dst]
        lw = 0.4 + 3.6 * abs(e.score or 0.0) / top_edge
        colour = _edge_colour(e.score, e.side)
        style = QKV_STYLES.get(e.qkv, "solid")
        if a.row == b.row:  # same row: an arc above, so it does not run through the nodes between
            arc = FancyArrowPatch((a.x, a.y), (b.x, b.y), connectionstyle="arc3,rad=-0.35",
                                  arrowstyle="-|>", mutation_scale=8, lw=lw, color=colour,
                                  linestyle=style, alpha=0.8, zorder=1)
            arc.set_gid(f"edges-arc-{len(ax.patches)}")
            ax.add_patch(arc)
            continue
        segs, widths = straight.setdefault((style, colour), ([], []))
        segs.append([(a.x, a.y), (b.x, b.y)])
        widths.append(lw)
    for i, ((style, colour), (segs, widths)) in enumerate(straight.items()):
        lines = LineCollection(segs, linewidths=widths, colors=colour, linestyles=[style], alpha=0.7,
                               zorder=1)
        lines.set_gid(f"edges-{i}")
        ax.add_collection(lines)
    colours, legend = _node_colours(placed.nodes)
    top_node = max((n.weight for n in placed.nodes), default=0.0) or 1.0
    dots = ax.scatter([n.x for n in placed.nodes], [n.y for n in placed.nodes],
                      s=[60 + 540 * n.weight / top_node for n in placed.nodes],
                      c=[colours[n.id] for n in placed.nodes], edgecolors="black", linewidths=0.6,
                      zorder=2)
    dots.set_gid("nodes")  # the SVG group of node markers, one per node, in `placed.nodes` order
    if len(placed.nodes) <= 120:  # beyond that the names only hide the picture
        for n in placed.nodes:
            ax.annotate(_short(n), (n.x, n.y), xytext=(0, -13), textcoords="offset points",
                        ha="center", va="top", fontsize=7, zorder=3)
    ax.set_yticks(range(n_rows), labels=list(placed.rows))
    ax.set_ylim(-0.7, n_rows - 0.3)
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    if placed.positions:
        _label_positions(ax, placed)
    else:
        ax.set_xticks([])
    ax.spines[["top", "right", "bottom"]].set_visible(False)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, markeredgecolor="black", label=lbl)
               for lbl, c in legend]
    handles += [Line2D([], [], color="#444444", linestyle=QKV_STYLES[k], label=f"into {k}") for k in "qkv"
                if any(e.qkv == k for e in placed.edges)]
    handles += [Line2D([], [], color=SIGN_COLOURS[s], label=lbl)
                for s, lbl in ((1, "positive"), (-1, "negative"))
                if any((e.score or 0) * s > 0 for e in placed.edges)]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _short(n: PlacedNode) -> str:
    return n.id.split("@")[0] if n.position is not None else n.id


def _label_positions(ax: Any, placed: Layout) -> None:
    centres: dict[str, list[float]] = {}
    for n in placed.nodes:
        if n.position is not None:
            centres.setdefault(n.position, []).append(n.x)
    ticks = [(sum(v) / len(v), p) for p, v in centres.items()]
    ax.set_xticks([t for t, _ in ticks], labels=[f"@{p}" for _, p in ticks], fontsize=8)
    ax.set_xlabel("position")


def _edge_colour(score: float | None, side: str | None) -> str:
    if side is not None:
        return SIDE_COLOURS[side]
    if score is None or score == 0:
        return SIGN_COLOURS[0]
    return SIGN_COLOURS[1 if score > 0 else -1]


def _node_colours(nodes: tuple[PlacedNode, ...]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Colour per node and the legend entries: by comparison side, else role, else kind."""
    if any(n.side is not None for n in nodes):
        names = {"shared": "in both", "only_a": "only in A", "only_b": "only in B"}
        used = [s for s in ("shared", "only_a", "only_b") if any(n.side == s for n in nodes)]
        return ({n.id: SIDE_COLOURS[n.side or "shared"] for n in nodes},
                [(names[s], SIDE_COLOURS[s]) for s in used])
    roles = list(dict.fromkeys(n.role for n in nodes if n.role))
    role_colour = {r: _ROLE_PALETTE[i % len(_ROLE_PALETTE)] for i, r in enumerate(roles)}
    out = {n.id: role_colour[n.role] if n.role else KIND_COLOURS.get(n.kind, "#999999") for n in nodes}
    kinds = list(dict.fromkeys(n.kind for n in nodes if not n.role))
    return out, [(r, role_colour[r]) for r in roles] + [(k, KIND_COLOURS.get(k, "#999999")) for k in kinds]


def _save_atomically(figure: Any, out: Path, dpi: int) -> None:
    """Save into a temporary file beside `out`, then rename it over `out`: readers never see a
    half-written drawing, and a failed save leaves the old file (if any) untouched."""
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise InvalidInputError(f"Cannot write {out}: the folder {directory} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            figure.savefig(fh, format=out.suffix.lower().lstrip("."), dpi=dpi, bbox_inches="tight")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes it private; give it a new file's usual mode
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
