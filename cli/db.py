"""`catalog db upgrade|current`: the database schema, built and upgraded by the migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._common import console, print_json, state

app = typer.Typer(help="Create or upgrade the catalog's database schema.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _open(ctx: typer.Context, create: bool = False):  # -> Catalog, without refusing an out-of-date schema
    from catalog.store import Catalog

    return Catalog.open(state(ctx).db, check_schema=False, create=create)


@app.command("upgrade")
def upgrade(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Migrate the database to the newest schema (creating it if new). Back it up first."""
    cat = _open(ctx, create=True)
    before = cat.current_revision()
    cat.upgrade()
    after = cat.current_revision()
    if json_:
        print_json({"url": cat.url, "from": before, "to": after})
    elif before == after:
        console.print(f"{cat.url} is already at the newest schema ({after}).")
    else:
        console.print(f"upgraded {cat.url} from {before or 'an empty database'} to {after}.")


@app.command("current")
def current(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Print the database's schema revision and the newest one this version knows."""
    cat = _open(ctx)
    rev, head = cat.current_revision(), cat.head_revision()
    if json_:
        print_json({"url": cat.url, "current": rev, "head": head, "up_to_date": rev == head})
        return
    status = "up to date" if rev == head else "run `catalog db upgrade`"
    console.print(f"{cat.url}: revision {rev or 'none (empty database)'}, newest {head} ({status})")
