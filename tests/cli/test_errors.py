"""The one error table: one line on stderr, the right exit code, no password, no traceback."""

from __future__ import annotations

import pytest

from catalog.errors import CatalogError, NotFoundError, SchemaOutOfDateError
from cli._common import EXIT_INTERNAL, EXIT_INTERRUPTED, map_error, redact


@pytest.mark.parametrize("exc, code, text", [
    (NotFoundError("No circuit 7. Run `catalog list`."), 1, "No circuit 7. Run `catalog list`."),
    (SchemaOutOfDateError("Run `catalog db upgrade`."), 1, "Run `catalog db upgrade`."),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted; the transaction in progress, if any, was rolled back."),
    (FileNotFoundError(2, "No such file or directory", "x.json"), 1, "x.json: No such file"),
    (ZeroDivisionError("boom"), EXIT_INTERNAL, "--debug"),
    (CatalogError("first line\n  second line"), 1, "first line second line"),
])
def test_error_table(exc, code, text):
    message, exit_code = map_error(exc)
    assert exit_code == code
    assert text in message


def test_passwords_never_reach_messages():
    exc = CatalogError("cannot reach postgresql+psycopg://bob:hunter2@db.example:5432/circuits")
    message, _ = map_error(exc)
    assert "hunter2" not in message and "bob:***@db.example" in message
    assert redact("sqlite:////tmp/x.db and postgresql://u:p@h/d") == \
        "sqlite:////tmp/x.db and postgresql://u:***@h/d"


def test_catalog_error_is_one_line_and_exit_1(cli):
    result = cli("show", "999")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_debug_lets_the_exception_through(db):
    from typer.testing import CliRunner

    from cli.app import app

    CliRunner().invoke(app, ["--db", db, "db", "upgrade"])
    result = CliRunner().invoke(app, ["--db", db, "--debug", "show", "999"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert f"{NotFoundError.__module__}.NotFoundError: No circuit #999" in result.stderr


def test_password_of_an_unreachable_server_is_hidden(cli_raw):
    result = cli_raw("--db", "postgresql://alice:s3cret@127.0.0.1:1/nothing", "list")
    assert result.exit_code == 1
    assert "s3cret" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: ")


@pytest.fixture
def cli_raw(db):
    from typer.testing import CliRunner

    from cli.app import app

    return lambda *args: CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("exc, code, text", [
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "error: interrupted; the transaction in progress"),
    (RuntimeError("bug"), EXIT_INTERNAL, "error: unexpected RuntimeError: bug. Rerun with --debug"),
])
def test_interrupt_and_internal_errors_through_a_command(cli, monkeypatch, exc, code, text):
    from cli import circuits

    def boom(ctx):
        raise exc

    monkeypatch.setattr(circuits, "open_catalog", boom)
    result = cli("list")
    assert result.exit_code == code
    assert result.stderr.startswith(text) and "Traceback" not in result.stderr
