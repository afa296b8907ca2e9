"""Redraw the README's pictures in docs/img/ (run from the repository root, after the main job).

    python docs/draw_examples.py demo.db

Draws the newest IOI circuit discovered in the catalog DB on the embedded model, the published
IOI circuit of Wang et al. and circuit-tracer's Dallas/Austin attribution graph (from the shared
peer-format fixtures), then stores each PNG with a 128-colour palette to keep the files small.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from catalog.draw import draw
from catalog.formats import read_circuits
from catalog.published import published_circuits
from catalog.store import Catalog

OUT = Path("docs/img")
PEER = Path("../shared/fixtures/peer-formats")


def small_png(path: Path) -> None:
    image = Image.open(path).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(db: str) -> None:
    cat = Catalog.open(db)
    discovered = cat.get(cat.resolve("ioi", model="catalog-default"))
    wang = next(e.circuit for e in published_circuits() if e.name == "ioi-wang2022")
    (graph,) = read_circuits(PEER / "circuit-tracer_dallas-austin_gemma-2-2b.json", task="factual-recall")
    for name, circuit, dpi in (("discovered-ioi", discovered, 90), ("published-ioi-wang2022", wang, 90),
                               ("attribution-dallas-austin", graph, 60)):
        path = draw(circuit, OUT / f"{name}.png", dpi=dpi)
        small_png(path)
        print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo.db")
