"""The schema declaration is the only place a column list is written."""

from __future__ import annotations

import ast
from pathlib import Path

from pipelines import schemas

REPO = Path(__file__).resolve().parent.parent
CODE_DIRS = ("pipelines", "dags")
DECLARATION = REPO / "pipelines" / "schemas.py"


def _string_sequences(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(items) == len(node.elts) and items:
                yield node.lineno, items


def test_no_module_repeats_a_tables_column_list():
    tables = [set(t.names) for t in schemas.TABLES.values()]
    offenders = []
    for d in CODE_DIRS:
        for path in sorted((REPO / d).rglob("*.py")):
            if path == DECLARATION:
                continue
            for lineno, items in _string_sequences(ast.parse(path.read_text(encoding="utf-8"))):
                names = set(items)
                # Five or more names, all columns of one table and most of it: a copied column list
                # (a sort key or a join key of a few columns is not).
                for cols in tables:
                    if len(names) >= 5 and names <= cols and len(names) >= 0.6 * len(cols):
                        offenders.append(f"{path.relative_to(REPO)}:{lineno}: {sorted(names)}")
                        break
    assert not offenders, "column lists written outside pipelines/schemas.py:\n" + "\n".join(offenders)


def test_declaration_is_consistent():
    for t in schemas.TABLES.values():
        assert len(set(t.names)) == len(t.names), t.name
        assert set(t.key) <= set(t.names), t.name
        if t.partition:
            assert t.partition in t.names, t.name
        t.arrow_schema()  # every logical type maps
