"""`catalog db upgrade|current`: the database schema, built and upgraded by the migrations."""

from __future__ import annotations

import typer

from cli._common import JsonOpt, console, print_json, state

app = typer.Typer(help="Create or upgrade the catalog's database schema.", no_args_is_help=True)



def _open(ctx: typer.Context, create: bool = False):  # -> Catalog, without refusing an out-of-date schema
    from catalog.store import Catalog

    return Catalog.open(state(ctx).db, check_schema=False, create=create)


@app.command("upgrade")
def upgrade(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Migrate the database to the newest schema (creating it if new). Back it up first."""
    status = _open(ctx, create=True).upgrade()
    before, after = status.previous, status.current
    if json_:
        print_json(status)
    elif before == after:
        console.print(f"{status.url} is already at the newest schema ({after}).")
    else:
        console.print(f"upgraded {status.url} from {before or 'an empty database'} to {after}.")


@app.command("current")
def current(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Print the database's schema revision and the newest one this version knows."""
    status = _open(ctx).schema_status()
    if json_:
        print_json(status)
        return
    where = "up to date" if status.up_to_date else "run `catalog db upgrade`"
    console.print(f"{status.url}: revision {status.current or 'none (empty database)'}, "
                  f"newest {status.head} ({where})")
