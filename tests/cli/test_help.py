"""Help reads as a person would write it: every value named by a placeholder, never a type hint
(``<str>``) or braces (``{REF}``); and ``catalog --version``."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from catalog import __version__
from cli.app import app

TYPE_HINT = re.compile(r"<(?:str|int|float|bool|path|file|list|tuple|choice|int range|float range)[^>]*>")
BRACES = re.compile(r"\{[A-Za-z_.|]+\}")


def every_command_path() -> list[list[str]]:
    paths: list[list[str]] = [[]]

    def walk(cmd: object, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append(path + [name])
            walk(sub, path + [name])

    walk(typer.main.get_command(app), [])
    return paths


def test_help_names_values_by_placeholders():
    runner = CliRunner()
    for path in every_command_path():
        out = runner.invoke(app, [*path, "--help"]).output
        assert not TYPE_HINT.search(out), (path, TYPE_HINT.search(out))
        assert not BRACES.search(out), (path, BRACES.search(out))
    show = runner.invoke(app, ["show", "--help"]).output
    assert "Usage: catalog show [OPTIONS] REF" in show and "--model MODEL" in show
    accuracy = runner.invoke(app, ["model", "accuracy", "--help"]).output
    assert "--seed SEED" in accuracy and "--n N" in accuracy


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"catalog (circuit-catalog) {__version__}"
