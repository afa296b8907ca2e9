"""A wheel built from the repository, installed into a fresh virtualenv, finds its migrations and
its published-circuit data: `catalog db upgrade` and `catalog published load` work from outside
the source tree."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(cmd: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_installed_wheel_ships_migrations_and_published_data(tmp_path):
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, REPO], cwd=tmp_path)
    (wheel,) = dist.glob("circuit_catalog-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps", wheel],
        cwd=tmp_path)
    # Dependencies come from this environment's site-packages, listed as plain paths: .pth files
    # there (the editable install's finder among them) are not processed, so the source tree
    # stays invisible.
    purelib = run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  cwd=tmp_path).strip()
    Path(purelib, "_deps_from_dev_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CATALOG_DB")}
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run([py, "-c", "import catalog, cli; print(catalog.__file__); print(cli.__file__)"],
                cwd=work, env=env).split()
    assert all(p.startswith(purelib) for p in where), where

    catalog = venv / "bin" / "catalog"
    db = work / "c.db"
    run([catalog, "--db", db, "db", "upgrade"], cwd=work, env=env)
    current = json.loads(run([catalog, "--db", db, "db", "current", "--json"], cwd=work, env=env))
    assert current["up_to_date"] is True
    loaded = json.loads(run([catalog, "--db", db, "published", "load", "--json"], cwd=work, env=env))
    assert {r["name"] for r in loaded} >= {"ioi-wang2022", "greater-than-hanna2023"}
    again = json.loads(run([catalog, "--db", db, "published", "load", "--json"], cwd=work, env=env))
    assert [r["id"] for r in again] == [r["id"] for r in loaded]  # idempotent

    # the embedded models ship too (whatever the checkout holds of them)
    listing = ("from catalog.models import EMBEDDED_MODELS as m; import json; "
               "print(json.dumps({n: sorted(str(p.relative_to(d)) for p in d.rglob('*') if p.is_file())"
               " if d.is_dir() else [] for n, d in m.items()}))")
    installed = json.loads(run([py, "-c", listing], cwd=work, env=env))
    from catalog.models import EMBEDDED_MODELS

    assert set(installed) == set(EMBEDDED_MODELS)
    for name, folder in EMBEDDED_MODELS.items():
        source = REPO / "catalog" / "data" / folder.name
        expected = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()) \
            if source.is_dir() else []
        assert installed[name] == expected, name
    # so do the transcoder sets, and the installed CLI reads the default model's set
    shipped = REPO / "catalog" / "data" / "transcoders"
    expected_sets = sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*") if p.is_file())
    assert "catalog-default/transcoders.safetensors" in expected_sets
    sets = run([py, "-c", "from catalog.transcoders.shipped import SHIPPED as d; print(sorted(str(p.relative_to(d))"
                " for p in d.rglob('*') if p.is_file()))"], cwd=work, env=env)
    assert sets.strip() == str(expected_sets)
    shown = json.loads(run([catalog, "transcoders", "show", "catalog-default", "--json"], cwd=work, env=env))
    assert shown["shipped"] is True and shown["n_layers"] == 4
    # the web view's pages and scripts ship too, and the installed app serves them
    pages = run([py, "-c", "from importlib import resources; print(sorted(p.name for p in "
                 "(resources.files('web') / 'static').iterdir()))"], cwd=work, env=env)
    source_pages = sorted(p.name for p in (REPO / "web" / "static").iterdir() if p.is_file())
    assert pages.strip() == str(source_pages)
