"""The root `catalog` app: global options, and the registration of every command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cli import (
    analysis,
    circuits,
    db,
    discover,
    draw,
    export,
    features,
    model,
    published,
    queries,
    serve,
    sweep,
    transcoders,
)
from cli._common import EXIT_INTERRUPTED, CatalogGroup, State, err_console

app = typer.Typer(
    name="catalog",
    cls=CatalogGroup,
    help="A catalog of transformer circuits: discover, import, compare and export them, "
         "with provenance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from catalog import __version__

        typer.echo(f"catalog (circuit-catalog) {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option(
        "--db", envvar="CATALOG_DB", show_envvar=True, metavar="PATH|URL",
        help="Catalog database: a file path or a SQLAlchemy URL (default: "
             "~/.local/share/circuit-catalog/catalog.db).")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks instead of one-line errors.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version of circuit-catalog and exit.")] = False,
) -> None:
    """A catalog of transformer circuits: discover, import, compare and export them."""
    ctx.obj = State(db=db, debug=debug)


# In the order `catalog --help` lists them: find and store circuits, inspect, relate, move.
app.command("discover")(discover.discover)
app.command("runs")(discover.runs)
app.command("methods")(discover.methods)
app.command("path")(discover.path)
app.command("sweep")(sweep.sweep)
app.command("stability")(sweep.stability)
app.command("import")(circuits.import_)
app.command("list")(circuits.list_)
app.command("show")(circuits.show)
app.command("delete")(circuits.delete)
app.command("roles")(analysis.roles)
app.command("intervene")(analysis.intervene)
app.command("repair")(analysis.repair)
app.command("compare")(queries.compare)
app.command("reuse")(queries.reuse)
app.command("find")(queries.find)
app.command("draw")(draw.draw)
app.command("export")(export.export)
app.command("serve")(serve.serve)
app.add_typer(features.app, name="features")
app.add_typer(published.app, name="published")
app.add_typer(model.app, name="model")
app.add_typer(transcoders.app, name="transcoders")
app.add_typer(db.app, name="db")


def main() -> None:
    """Console-script entry point. SIGTERM and SIGHUP (like Ctrl-C) become exceptions, so an
    import or discovery that is stopped rolls back or records why instead of dying mid-write."""
    from catalog import signals

    signals.install()
    try:
        app(prog_name="catalog")
    except KeyboardInterrupt as e:  # outside a command (commands map it themselves)
        err_console.print(f"error: {getattr(e, 'reason', 'interrupted')}.", markup=False)
        sys.exit(getattr(e, "exit_code", EXIT_INTERRUPTED))


if __name__ == "__main__":
    main()
