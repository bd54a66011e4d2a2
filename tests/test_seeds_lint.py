"""`seedfunnel seeds lint` (issue 15): likely ambiguous aliases, found from general vocabularies.

The lint never reads context_aliases to decide; it only reports whether a flagged alias is one. So
the shipped seeds are clean when every flagged alias is a context alias, and taking one of the
issue's examples out of context_aliases must make the lint complain on its own.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.reference import load_reference
from pipelines.text.lint import lint

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
MUST_FIND = ["好奇", "渴望", "美的", "小米", "苹果", "HR", "NB", "CAMEL"]


@pytest.fixture(scope="module")
def brands() -> pd.DataFrame:
    return load_reference(SEEDS).brands


@pytest.fixture(scope="module")
def findings(brands) -> pd.DataFrame:
    return lint(brands)


def test_shipped_seeds_are_clean(findings):
    open_ = findings[~findings["is_context"]]
    assert open_.empty, open_.to_string()


@pytest.mark.parametrize("alias", MUST_FIND)
def test_the_issue_examples_are_found_without_context_aliases(brands, alias):
    stripped = brands.assign(
        context_aliases=brands["context_aliases"].str.split("|").map(lambda xs: "|".join(x for x in xs if x != alias))
    )
    found = lint(stripped)
    hit = found[found["alias"].eq(alias)]
    assert not hit.empty, f"the lint no longer finds {alias}"
    assert not hit["is_context"].any()


def test_reasons_name_the_rule_and_the_evidence(findings):
    by = {(r.alias, r.reason): r.detail for r in findings.itertuples()}
    assert "acronym" in by[("HR", "acronym")]
    assert "English" in by[("CAMEL", "english word")]
    assert "'a'" in by[("好奇", "common word")]  # jieba tags it an adjective
    assert "美|的" in by[("美的", "across words")]
    # a brand name is as frequent in other languages as in English: not an English word
    assert not findings["alias"].isin(["Samsung", "Sony", "Nike", "Huawei", "华为", "索尼"]).any()


def test_one_character_aliases_are_not_judged(findings):
    assert "米" not in set(findings["alias"])  # shorter than any entry: it never matches


def test_cli_prints_a_table_and_fails_on_an_open_alias(tmp_path, brands):
    runner = CliRunner()
    ok = runner.invoke(app, ["seeds", "lint", "--seeds", str(SEEDS), "--all"])
    assert ok.exit_code == 0, ok.output
    assert "likely ambiguous aliases" in ok.output and "CAMEL" in ok.output and "english word" in ok.output

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name in ("categories.csv", "creators.csv"):
        (seeds / name).write_bytes((SEEDS / name).read_bytes())
    raw = pd.read_csv(SEEDS / "brands.csv", dtype=str, keep_default_na=False)
    raw.loc[raw["brand_id"].eq("b_huggies"), "context_aliases"] = ""
    raw.to_csv(seeds / "brands.csv", index=False)
    bad = runner.invoke(app, ["seeds", "lint", "--seeds", str(seeds)])
    assert bad.exit_code == 1, bad.output
    assert "b_huggies" in bad.output and "好奇" in bad.output and "common word" in bad.output


def _seeds_with(tmp_path, brands_csv: str) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "categories.csv").write_text("category_id,name,keywords\ncat_baby,母婴,纸尿裤\n", encoding="utf-8")
    (seeds / "brands.csv").write_text(brands_csv, encoding="utf-8")
    return seeds


def test_context_aliases_column_is_optional(tmp_path):
    seeds = _seeds_with(tmp_path, "brand_id,name,aliases,category_id\nb_huggies,好奇,好奇|Huggies,cat_baby\n")
    brands = load_reference(seeds).brands
    assert brands["context_aliases"].tolist() == [""]


def test_a_context_alias_must_be_an_alias(tmp_path):
    from pipelines.reference import SeedError

    seeds = _seeds_with(
        tmp_path,
        "brand_id,name,aliases,category_id,context_aliases\nb_huggies,好奇,好奇|Huggies,cat_baby,好奇|好奇心\n",
    )
    with pytest.raises(SeedError, match=r"line 2: context_aliases of brand 'b_huggies' lists '好奇心'"):
        load_reference(seeds)
