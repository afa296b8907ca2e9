"""The JSON API returns the library's pydantic models, the same values `--json` prints."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.app import app


def cli_json(db: str, *args: str) -> object:
    result = CliRunner().invoke(app, ["--db", db, *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_matches_cli_json(client, web_db) -> None:
    db, ids = web_db
    assert client.get("/api/circuits").json() == cli_json(db, "list")
    only = client.get("/api/circuits", params={"task": "gt"}).json()
    assert [r["id"] for r in only] == [ids["gt"]]


def test_compare_reuse_find_match_cli_json(client, web_db) -> None:
    db, ids = web_db
    got = client.get("/api/compare", params={"a": "ioi", "b": "gt"}).json()
    assert got == cli_json(db, "compare", "ioi", "gt")
    assert got["nodes"]["jaccard"] == 0.5  # worked out by hand in tests/conftest.py
    assert client.get("/api/reuse").json() == cli_json(db, "reuse")
    assert client.get("/api/find", params={"component": "a1.h1"}).json() == cli_json(db, "find", "a1.h1")


def test_circuit_has_show_json_and_layered_positions(client, web_db) -> None:
    db, ids = web_db
    got = client.get(f"/api/circuits/{ids['ioi']}").json()
    assert got["circuit"] == cli_json(db, "show", str(ids["ioi"]), "--attention")
    pos = {n["id"]: (n["x"], n["y"]) for n in got["layout"]["nodes"]}
    assert set(pos) == {"input", "a0.h0", "a1.h1", "a2.h2", "m0", "logits"}
    assert pos["input"][1] < pos["a0.h0"][1] < pos["a1.h1"][1] < pos["a2.h2"][1] < pos["logits"][1]
    drawn = {f"{e['src']}->{e['dst']}" + (f"<{e['qkv']}>" if e["qkv"] else "") for e in got["layout"]["edges"]}
    assert drawn == {e["id"] for e in got["circuit"]["edges"]}


def test_compare_marks_membership(client, web_db) -> None:
    _, ids = web_db
    got = client.get(f"/api/circuits/{ids['ioi']}", params={"compare": str(ids["gt"])}).json()
    side = {n["id"]: n["side"] for n in got["layout"]["nodes"]}
    assert side["a1.h1"] == side["m0"] == "shared"
    assert side["a0.h0"] == "only_a" and side["m1"] == "only_b" and side["a2.h3"] == "only_b"
    assert got["other"]["id"] == ids["gt"]


def test_errors_are_json_with_status(client) -> None:
    missing = client.get("/api/circuits/999")
    assert missing.status_code == 404 and "999" in missing.json()["error"]
    bad = client.get("/api/find", params={"component": "not-a-component!"})
    assert bad.status_code == 400 and bad.json()["error"]


def test_read_only_and_no_docs_from_a_cdn(client) -> None:
    assert client.post("/api/circuits").status_code == 405
    assert client.delete("/api/circuits/1").status_code == 405
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN
    schema = client.get("/openapi.json").json()
    assert {"/api/circuits", "/api/circuits/{ref}", "/api/compare", "/api/reuse", "/api/find"} <= set(schema["paths"])


def test_strings_from_files_stay_data(client, web_db, hostile) -> None:
    _, ids = web_db
    got = client.get(f"/api/circuits/{ids['ind']}").json()
    assert got["circuit"]["name"] == hostile  # JSON carries it verbatim; pages insert it as text


def test_pages_are_static_and_offline(client) -> None:
    for path in ("/", "/circuit/1", "/compare", "/reuse", "/find"):
        html = client.get(path).text
        assert "<script src=\"/static/app.js\"></script>" in html
        assert "{" not in html  # every placeholder filled
        assert "http://" not in html and "https://" not in html
    assert "http" not in client.get("/static/app.js").text.replace("http://www.w3.org/2000/svg", "")


def test_a_missing_catalog_is_refused_and_not_created(tmp_path) -> None:
    import pytest

    from catalog.errors import NotFoundError
    from web import create_app

    missing = tmp_path / "no" / "such.db"
    with pytest.raises(NotFoundError):
        create_app(str(missing))
    assert not missing.exists() and not missing.parent.exists()
