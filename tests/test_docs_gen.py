"""docs/tables.md is generated from the declaration and cannot drift from it."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines import db, docs_gen, schemas
from pipelines.migrations import views

REPO = Path(__file__).resolve().parent.parent


def _section(md: str, heading: str) -> str:
    """The text of the ``### heading`` section, up to the next heading."""
    start = md.index(f"### `{heading}`\n")
    nxt = re.search(r"^##", md[start + 4 :], flags=re.M)
    return md[start : start + 4 + nxt.start()] if nxt else md[start:]


def test_committed_tables_md_is_current():
    committed = (REPO / "docs" / "tables.md").read_text(encoding="utf-8")
    assert committed == docs_gen.render_tables_md(), "docs/tables.md is stale: run python -m pipelines.docs_gen"


def test_every_table_column_and_view_is_documented():
    md = docs_gen.render_tables_md()
    for t in schemas.TABLES.values():
        sec = _section(md, t.name)
        assert f"- **Grain:** {t.grain}" in sec
        assert "- **Key:** " + ", ".join(f"`{k}`" for k in t.key) in sec
        rows = [line for line in sec.splitlines() if line.startswith("| `")]
        assert [re.match(r"\| `([^`]+)`", r).group(1) for r in rows] == t.names, t.name
        for row, c in zip(rows, t.columns, strict=True):
            # Five cells per row: a '|' inside a doc must be escaped, not split the row.
            assert len(re.split(r"(?<!\\)\|", row)) == 7, row
            assert f"| `{c.type}` | {'yes' if c.nullable else 'no'} |" in row
    for v in views.VIEWS:
        sec = _section(md, v.name)
        assert v.doc in sec and v.create_sql(sep="\n") in sec
    assert f"migration head `{db.head()}`" in md


def test_layers_come_in_order_and_tables_under_their_layer():
    md = docs_gen.render_tables_md()
    headings = [h for h in re.findall(r"^## (.+)$", md, flags=re.M)]
    layer_titles = [title for title, _ in docs_gen.LAYERS.values()]
    assert [h for h in headings if h in layer_titles] == layer_titles
    assert headings[-1] == "Consumer views"
    for layer, (title, _) in docs_gen.LAYERS.items():
        start = md.index(f"## {title}\n")
        end = md.index("\n## ", start + 1)
        names = re.findall(r"^### `([^`]+)`$", md[start:end], flags=re.M)
        assert names == [t.name for t in schemas.TABLES.values() if t.layer == layer]


def test_constraints_read_as_declared():
    amount = schemas.ORDERS.column("amount_fen")
    assert docs_gen.constraints(amount) == "> 0; <= 1000000000000"  # SPEC 3: 0 < amount <= 10^12
    assert docs_gen.constraints(schemas.ID_LINKS.column("confidence")) == ">= 0; <= 1"
    note_types = ", ".join(f"`{t}`" for t in schemas.NOTE_TYPES)
    assert docs_gen.constraints(schemas.NOTES.column("note_type")) == f"one of {note_types}"
    assert docs_gen.constraints(schemas.SEARCHES.column("query")) == ""


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "tables.md"
    stale.write_text("# old\n", encoding="utf-8")
    monkeypatch.setattr(docs_gen, "TABLES_MD", stale)
    assert docs_gen.main(["--check"]) == 1
    assert docs_gen.main([]) == 0
    assert docs_gen.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == docs_gen.render_tables_md()


def test_changelog_names_every_warehouse_table_and_view():
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## 0.1.0" in changelog and "0001_baseline" in changelog
    for name in [t.name for t in schemas.WAREHOUSE_TABLES] + [v.name for v in views.VIEWS]:
        assert f"`{name}`" in changelog, name
