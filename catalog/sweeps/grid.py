"""What a sweep runs: its grid (tasks x methods x models x seeds) and the options every cell shares."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from catalog.discovery.methods import DEFAULT_METHOD
from catalog.errors import InvalidInputError
from catalog.provenance import Selection

#: How the embedded default model is named in a sweep's cells (``--model`` left out).
DEFAULT_MODEL = "catalog-default"


class Cell(BaseModel):
    """One discovery of a sweep. `key` names it uniquely within the sweep.

    >>> Cell(task="ioi", method="eap", model="catalog-default", seed=1).key
    'ioi|eap|catalog-default|1'
    """

    model_config = ConfigDict(frozen=True)

    task: str
    method: str
    model: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}|{self.method}|{self.model}|{self.seed}"


class SweepSpec(BaseModel):
    """A sweep's grid and the discovery options shared by its cells (as `catalog discover`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[str, ...] = Field(min_length=1)
    methods: tuple[str, ...] = (DEFAULT_METHOD,)
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    seeds: tuple[int, ...] = (0,)
    n: int | None = Field(default=None, ge=1, le=1_000_000)
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    ablation: str = "counterfactual"
    selection: Selection | None = None
    params: dict[str, Any] = {}
    device: str | None = None
    dtype: str = "float32"

    @field_validator("tasks", "methods", "models", "seeds")
    @classmethod
    def _distinct(cls, values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(dict.fromkeys(values))

    @field_validator("seeds")
    @classmethod
    def _seeds_fit(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= s < 2**63 for s in seeds):
            raise ValueError("seeds must be between 0 and 2**63 - 1")
        return seeds

    def cells(self) -> list[Cell]:
        """Every cell, in grid order (task, then method, model, seed)."""
        return [Cell(task=t, method=m, model=mo, seed=s)
                for t, m, mo, s in itertools.product(self.tasks, self.methods, self.models, self.seeds)]

    def check(self) -> None:
        """Fail before anything runs on an unknown task or method (with the nearest names)."""
        from catalog.discovery import get_method
        from catalog.tasks import get_task

        for t in self.tasks:
            get_task(t)
        for m in self.methods:
            get_method(m)

    @classmethod
    def parse(cls, data: dict[str, Any], where: str = "the sweep") -> SweepSpec:
        """A spec from plain data, with a one-line error naming what is wrong."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "value"
            raise InvalidInputError(f"{where}: {field}: {first['msg']}.") from None

    @classmethod
    def from_file(cls, path: str | Path) -> SweepSpec:
        """A spec from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file with the same keys:
        tasks, methods, models, seeds, n, batch_size, ablation, selection, params."""
        p = Path(path)
        if not p.is_file():
            raise InvalidInputError(f"Sweep file {p}: not a regular file. Give a .toml or .yaml file.")
        text = p.read_text(encoding="utf-8", errors="strict")
        try:
            if p.suffix.lower() == ".toml":
                data: Any = tomllib.loads(text)
            elif p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                raise InvalidInputError(f"Sweep file {p}: name it .toml, .yaml or .yml.")
        except (tomllib.TOMLDecodeError, ValueError) as e:
            raise InvalidInputError(f"Sweep file {p} does not parse: {e}".splitlines()[0]) from None
        except ImportError:
            raise InvalidInputError("YAML sweep files need PyYAML (pip install pyyaml); or write TOML.") from None
        except Exception as e:  # yaml's own errors
            raise InvalidInputError(f"Sweep file {p} does not parse: {e}".splitlines()[0]) from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"Sweep file {p}: expected a table of keys (tasks, methods, models, seeds, ...).")
        return cls.parse(data, where=f"Sweep file {p}")
