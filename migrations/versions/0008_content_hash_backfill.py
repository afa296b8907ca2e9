"""Give circuits stored before content hashes existed their hash, so deduplication covers them.

Revision 0003 added ``circuits.content_hash`` but left older circuits without one (NULL), so an
old catalog found a repeated import only when it came from the same source file. This revision
computes the hash of every circuit that lacks one, with the function the store's writer uses
(`catalog.store.identity.parts_hash`, fed the stored rows). Where several circuits have the same
content (a file imported twice before 0003), the oldest gets the hash and the others stay NULL:
the hash is unique, and NULL never collides. Downgrading leaves the hashes; they are still right.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from catalog.store.identity import parts_hash

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def _members(stored: Any) -> tuple[str, ...]:
    """A group's members as the store reads them back: a list of strings, anything else none."""
    if isinstance(stored, (str, bytes)):
        try:
            stored = json.loads(stored)
        except (ValueError, RecursionError):
            return ()
    return tuple(m for m in stored if isinstance(m, str)) if isinstance(stored, list) else ()


def upgrade() -> None:
    conn = op.get_bind()
    taken = set(conn.execute(sa.text("SELECT content_hash FROM circuits WHERE content_hash IS NOT NULL")).scalars())
    todo = conn.execute(sa.text(
        "SELECT c.id, t.name, m.name, m.revision, m.n_layers, m.n_heads, m.d_model, m.parallel_attn_mlp, "
        "c.source, c.source_sha256 FROM circuits c JOIN tasks t ON t.id = c.task_id "
        "JOIN models m ON m.id = c.model_id WHERE c.content_hash IS NULL ORDER BY c.id")).all()
    for cid, task, *model, source, sha in todo:  # one circuit's rows in memory at a time
        nodes = conn.execute(sa.text(
            "SELECT node_id, kind, layer, head, feature, position, token, dictionary, score, in_circuit "
            "FROM nodes WHERE circuit_id = :c"), {"c": cid})
        edges = conn.execute(sa.text("SELECT src, dst, qkv, score, in_circuit FROM edges WHERE circuit_id = :c"),
                             {"c": cid})
        annotations = [(kind, node, value, _members(members)) for kind, node, value, members in conn.execute(
            sa.text("SELECT kind, node_id, value, members FROM annotations WHERE circuit_id = :c"), {"c": cid})]
        h = parts_hash(task, model, source, sha, nodes.all(), edges.all(), annotations)
        if h in taken:
            continue  # the same content is stored already: this one is a duplicate, kept as it is
        taken.add(h)
        conn.execute(sa.text("UPDATE circuits SET content_hash = :h WHERE id = :c"), {"h": h, "c": cid})


def downgrade() -> None:
    pass  # the hashes stay valid at 0007, which has the column
