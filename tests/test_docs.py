"""The docs are tested: every command has help text and appears in the README, the README's
`catalog` commands are real commands with real options, its test command is the one CI runs,
and its published-circuits commands run."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.app import app

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
# typer may bundle click or depend on it: find its usage-error base class through typer
CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def command_tree() -> dict[str, object]:
    """'path words' -> click command, for every command and sub-command."""
    root = typer.main.get_command(app)
    out: dict[str, object] = {}

    def walk(prefix: str, group: object) -> None:
        for name, cmd in getattr(group, "commands", {}).items():
            path = f"{prefix} {name}".strip()
            out[path] = cmd
            walk(path, cmd)

    walk("", root)
    return out


def code_blocks(text: str) -> list[str]:
    """The shell blocks (```bash, ```sh, ```console or unlabelled), each block matched whole so
    that another language's block never shifts which fences open and close."""
    return [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.DOTALL)
            if lang in ("", "bash", "sh", "console")]


def readme_catalog_commands() -> list[list[str]]:
    """Every `catalog ...` invocation in the README's shell blocks, split into words."""
    found = []
    for block in code_blocks(README):
        for segment in re.split(r"&&|;|\|\||\n", block):
            words = shlex.split(segment.strip(), comments=True)
            if words and words[0] == "catalog":
                found.append(words[1:])
    return found


def test_every_command_has_help_and_every_option_too():
    for path, cmd in command_tree().items():
        assert (getattr(cmd, "help", None) or "").strip(), f"catalog {path} has no help text"
        for param in getattr(cmd, "params", []):
            if getattr(param, "param_type_name", "") == "option":
                assert (param.help or "").strip(), f"catalog {path} {param.opts[0]} has no help"


def test_every_command_appears_in_the_readme():
    missing = [p for p in command_tree() if f"catalog {p}" not in README]
    assert not missing, f"not in README.md: {missing}"


def parse(words: list[str]) -> None:
    """Parse `catalog WORDS` as the app would, without running it (raises on a bad command)."""
    root = typer.main.get_command(app)
    rest = list(words)
    while rest and rest[0].startswith("-"):  # global options
        flag = rest.pop(0)
        if flag == "--db":
            rest.pop(0)
    cmd, path = root, []
    while hasattr(cmd, "commands") and rest:
        name = rest.pop(0)
        assert name in cmd.commands, f"catalog {' '.join(path + [name])}: no such command"
        cmd, path = cmd.commands[name], path + [name]
    assert not hasattr(cmd, "commands"), f"catalog {' '.join(path)} needs a sub-command"
    cmd.make_context(" ".join(["catalog", *path]), rest)


def test_readme_catalog_commands_are_real_commands():
    commands = readme_catalog_commands()
    assert len(commands) >= 7
    mentioned = {w for c in commands for w in c if not w.startswith("-")}
    assert {"discover", "compare", "export", "published"} <= mentioned
    for words in commands:
        try:
            parse(words)
        except CLICK_ERROR as e:  # unknown option, missing argument, bad value
            pytest.fail(f"README command `catalog {shlex.join(words)}` does not parse: {e}")


def test_readme_inline_commands_name_real_commands_and_options():
    """`catalog X [--opt V]` in the reference table and the prose: X exists and has --opt."""
    tree = command_tree()
    root_opts = {o for p in typer.main.get_command(app).params for o in p.opts} | {"--help", "-h"}
    spans = re.findall(r"`(catalog [^`]+)`", README)
    assert len(spans) >= 14
    for span in spans:
        words = span.replace("\\|", "|").split()[1:]
        words = [w for w in words if not w.startswith("--db") and w != "--debug"]
        path = []
        while words and " ".join(path + [words[0]]) in tree:
            path.append(words.pop(0))
        if not path:
            assert words[0] in ("--help", "COMMAND") or words[0] in root_opts or words[0].startswith("["), \
                f"`{span}`: no such command"
            continue
        opts = {o for p in tree[" ".join(path)].params for o in p.opts} | root_opts
        for word in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(words)):
            assert word in opts, f"`{span}`: catalog {' '.join(path)} has no option {word}"


def test_readme_test_command_is_the_one_ci_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    pytest_cmds = [line for block in code_blocks(README) for line in block.splitlines()
                   if "pip install -e '.[dev]'" in line]
    assert len(pytest_cmds) == 1, "the README should give one test command"
    run_tests = pytest_cmds[0].split("&&")[-1].strip()
    assert run_tests.startswith("python -m pytest")
    assert run_tests in ci.splitlines() or f"\n{run_tests}\n" in ci
    for step in ("pip install torch==2.13.0", "pip install -e '.[dev]'"):
        assert step in pytest_cmds[0] and step in ci


def test_readme_published_commands_run(tmp_path, monkeypatch):
    """Run the README's published-circuits line, exactly as written, in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CATALOG_DB", raising=False)
    line = next(line for block in code_blocks(README) for line in block.splitlines()
                if line.startswith("catalog") and "published load" in line)
    runner = CliRunner()
    for segment in line.split("&&"):
        words = shlex.split(segment)
        assert words[0] == "catalog"
        result = runner.invoke(app, words[1:])
        assert result.exit_code == 0, f"{segment}: {result.stderr}"
    assert os.path.getsize(tmp_path / "ioi-wang2022.graphml") > 0
