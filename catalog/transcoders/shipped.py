"""Where transcoder sets live: the ones shipped in the package, or a folder you name.

A shipped set for model M is the folder ``catalog/data/transcoders/M/`` (the layout of
`catalog.transcoders.model`); any other set is loaded from the folder given with
``--transcoders PATH``.
"""

from __future__ import annotations

from pathlib import Path

from catalog.errors import InvalidInputError

#: The folder layout (see `catalog.transcoders.model`), here so reading a config needs no torch.
FORMAT = "catalog-transcoders/1"
WEIGHTS = "transcoders.safetensors"
CONFIG = "config.json"
LABELS = "labels.json"

#: The package's shipped sets, one folder per model name.
SHIPPED = Path(__file__).resolve().parent.parent / "data" / "transcoders"


def shipped_folder(model: str) -> Path:
    """The shipped set's folder for `model` (it may not exist)."""
    return SHIPPED / model


def transcoder_folder(path: str | Path | None, model: str) -> Path:
    """`path` when given, else the shipped set for `model`; a clear error when there is none."""
    if path is not None and str(path).strip():
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise InvalidInputError(f"--transcoders {path}: no such folder. Give a folder written by "
                                    "`catalog transcoders train` (transcoders.safetensors + config.json).")
        return folder
    folder = shipped_folder(model)
    if not folder.is_dir():
        raise InvalidInputError(
            f"No transcoders are shipped for model {model}. Train a set with `catalog transcoders train "
            f"--model {model}` and pass its folder with --transcoders PATH.")
    return folder
