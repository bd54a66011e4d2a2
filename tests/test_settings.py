"""Settings without code: seedfunnel.toml, environment overrides, `seedfunnel settings`, validation,
and Airflow tasks resolving the same values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.settings import (
    CONFIG_FILE,
    ENV_CONFIG,
    FunnelParams,
    QualityParams,
    Settings,
    SettingsError,
    env_name,
)
from seedfunnel_ops.airflow_local import settings_env, write_settings_file

cli = CliRunner()

EXAMPLE = """
home = "state"
buckets = 3

[funnel]
seed_window_days = 7
touch_kinds = ["read", "share"]

[funnel.kind_weights]
share = 4

[quality]
min_id_link_rate = 0.1
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No SEEDFUNNEL_* from the shell, and a working folder of the test's own."""
    for var in list(os.environ):
        if var.startswith("SEEDFUNNEL_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_in_the_working_folder_is_read(tmp_path):
    _write(tmp_path / CONFIG_FILE, EXAMPLE)
    s = Settings()
    assert s.config == tmp_path / CONFIG_FILE
    # Paths in the file are relative to the file's folder.
    assert s.home == tmp_path / "state" and s.landing == tmp_path / "state" / "landing"
    assert s.buckets == 3
    assert s.funnel.seed_window_days == 7.0 and s.funnel.conversion_window_days == 3.0
    assert s.funnel.touch_kinds == ("read", "share")
    # A partial kind_weights table changes only the kinds it names.
    assert s.funnel.kind_weight["share"] == 4.0 and s.funnel.kind_weight["read"] == 1.0
    assert s.quality.min_id_link_rate == 0.1 and s.quality.parameters()["min_id_link_rate"] == 0.1
    src = s.sources
    assert src["home"] == src["funnel.seed_window_days"] == f"file {tmp_path / CONFIG_FILE}"
    assert src["funnel.conversion_window_days"] == "default" and src["landing"] == "default (home/landing)"
    assert src["config"] == "the working folder"


def test_no_file_means_the_defaults(tmp_path):
    s = Settings()
    assert s.config is None and s.funnel == FunnelParams() and s.quality == QualityParams()
    assert s.home == Path(".seedfunnel") and s.buckets == 1
    assert set(s.sources.values()) <= {"default", "default (home/landing)"}


def test_config_named_by_env_or_argument_wins_over_the_working_folder(tmp_path, monkeypatch):
    _write(tmp_path / CONFIG_FILE, "buckets = 2\n")
    other = _write(tmp_path / "elsewhere" / "prod.toml", "buckets = 5\n")
    monkeypatch.setenv(ENV_CONFIG, str(other))
    assert Settings().buckets == 5 and Settings().sources["config"] == ENV_CONFIG
    third = _write(tmp_path / "third.toml", "buckets = 7\n")
    assert Settings(config=third).buckets == 7


def test_environment_overrides_the_file_and_arguments_override_both(tmp_path, monkeypatch):
    _write(tmp_path / CONFIG_FILE, EXAMPLE)
    monkeypatch.setenv("SEEDFUNNEL_HOME", str(tmp_path / "from-env"))
    monkeypatch.setenv(env_name("funnel", "seed_window_days"), "2.5")
    monkeypatch.setenv(env_name("funnel", "touch_kinds"), "read,like")
    monkeypatch.setenv(env_name("funnel", "kind_weights"), "read=3")
    monkeypatch.setenv(env_name("quality", "max_event_lag_hours"), "48")
    s = Settings()
    assert s.home == tmp_path / "from-env" and s.sources["home"] == "env SEEDFUNNEL_HOME"
    assert s.funnel.seed_window_days == 2.5
    assert s.sources["funnel.seed_window_days"] == "env SEEDFUNNEL_FUNNEL__SEED_WINDOW_DAYS"
    assert s.funnel.touch_kinds == ("read", "like")
    assert s.funnel.kind_weight["read"] == 3.0 and s.funnel.kind_weight["share"] == 4.0  # env over file
    assert s.quality.max_event_lag_hours == 48.0 and s.quality.min_id_link_rate == 0.1
    explicit = Settings(home=tmp_path / "arg", funnel=FunnelParams(seed_window_days=9))
    assert explicit.home == tmp_path / "arg" and explicit.sources["home"] == "argument"
    assert explicit.funnel.seed_window_days == 9.0 and explicit.sources["funnel.seed_window_days"] == "argument"
    assert explicit.buckets == 3  # still from the file
    # A copy with a change: that value is an argument now, the rest keep their sources.
    copy = s.with_(buckets=4)
    assert copy.buckets == 4 and copy.sources["buckets"] == "argument"
    assert copy.sources["home"] == "env SEEDFUNNEL_HOME" and copy == s.with_(buckets=4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("buckts = 2\n", r"unknown setting 'buckts'; did you mean 'buckets'\?"),
        ("[funnel]\nseed_window = 7\n", r"\[funnel\]: unknown setting 'seed_window'; did you mean 'seed_window_days'\?"),
        ("[quallity]\nmin_id_link_rate = 0.3\n", r"unknown setting 'quallity'"),
        ("[funnel]\nseed_window_days = -3\n", r"funnel\.seed_window_days = -3\.0 must be > 0 \(from file .*seedfunnel\.toml\)"),
        ("[funnel]\nconversion_window_days = 0\n", r"funnel\.conversion_window_days = 0\.0 must be > 0"),
        ("[quality]\nmin_id_link_rate = 1.5\n", r"quality\.min_id_link_rate = 1\.5 must be within \[0, 1\]"),
        ("[funnel]\nmin_link_confidence = -0.1\n", r"funnel\.min_link_confidence = -0\.1 must be within \[0, 1\]"),
        ("[funnel]\nseed_window_days = \"15\"\n", r"funnel\.seed_window_days = '15' must be a number"),
        ("[funnel]\ntouch_kinds = [\"read\", \"swipe\"]\n", r"unknown exposure kind\(s\) \['swipe'\]"),
        ("[funnel.kind_weights]\nread = -1\n", r"weight of 'read' must be >= 0"),
        ("[quality]\nmax_event_delivery_age_days = 1.5\n", r"must be a whole number"),
        ("buckets = 0\n", r"buckets = 0 must be >= 1 \(from file"),
        ("home = 3\n", r"home = 3 must be a string"),
        ("[funnel\nseed_window_days = 7\n", r"cannot read it as TOML"),
        (
            "[funnel.category_windows.cat_baby]\nseed_window_days = -1\n",
            r"funnel\.category_windows\.cat_baby\.seed_window_days = -1\.0 must be > 0 \(from file .*seedfunnel\.toml\)",
        ),
        (
            "[funnel.category_windows.cat_baby]\nseed_window = 70\n",
            r"funnel\.category_windows\.cat_baby: unknown window 'seed_window'; did you mean 'seed_window_days'\?",
        ),
        ("[funnel.category_windows.cat_baby]\n", r"funnel\.category_windows\.cat_baby names no window"),
        ("[funnel.category_windows]\ncat_baby = 70\n", r"must hold a table per category, \[funnel\.category_windows\.<category_id>\]"),
        ("[funnel]\ncategory_windows = 70\n", r"must hold a table per category"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(tmp_path, text, message):
    path = _write(tmp_path / CONFIG_FILE, text)
    with pytest.raises(SettingsError, match=message) as e:
        Settings()
    assert str(path) in str(e.value)


def test_windows_per_category(tmp_path, monkeypatch):
    # SPEC 5.11 (decision cycles): a table per category; a key left out keeps the global window,
    # and so does every category not named.
    _write(tmp_path / CONFIG_FILE, EXAMPLE + """
[funnel.category_windows.cat_skincare]
seed_window_days = 29
conversion_window_days = 7

[funnel.category_windows.cat_baby]
seed_window_days = 70
""")
    s = Settings()
    assert s.funnel.windows_of("cat_skincare") == (timedelta(days=29), timedelta(days=7))
    assert s.funnel.windows_of("cat_baby") == (timedelta(days=70), timedelta(days=3))
    assert s.funnel.windows_of("cat_pet") == s.funnel.windows_of(None) == (timedelta(days=7), timedelta(days=3))
    assert (s.funnel.max_seed_window, s.funnel.max_conversion_window) == (timedelta(days=70), timedelta(days=7))
    assert s.sources["funnel.category_windows"] == f"file {tmp_path / CONFIG_FILE}"
    assert json.loads(s.describe()["funnel.category_windows"]) == {
        "cat_baby": {"seed_window_days": 70.0}, "cat_skincare": {"seed_window_days": 29.0, "conversion_window_days": 7.0}
    }
    # The environment changes only the windows it names.
    monkeypatch.setenv(env_name("funnel", "category_windows"), "cat_baby.conversion_window_days=10,cat_pet.seed_window_days=2")
    s = Settings()
    assert s.funnel.windows_of("cat_baby") == (timedelta(days=70), timedelta(days=10))
    assert s.funnel.windows_of("cat_pet") == (timedelta(days=2), timedelta(days=3))
    assert s.funnel.windows_of("cat_skincare") == (timedelta(days=29), timedelta(days=7))
    assert s.sources["funnel.category_windows"] == "env SEEDFUNNEL_FUNNEL__CATEGORY_WINDOWS"
    # --toml writes them back as tables that read the same.
    again = _write(tmp_path / "copy" / "again.toml", s.to_toml())
    monkeypatch.delenv(env_name("funnel", "category_windows"))
    assert Settings(config=again).funnel == s.funnel
    monkeypatch.setenv(env_name("funnel", "category_windows"), "cat_baby=70")
    with pytest.raises(SettingsError, match=r"SEEDFUNNEL_FUNNEL__CATEGORY_WINDOWS='cat_baby=70' is not a valid category_windows"):
        Settings()
    # In code: a mapping, or the stored pairs; 15 and 15.0 are one setting.
    given = FunnelParams(category_windows={"c1": {"conversion_window_days": 1, "seed_window_days": 5}})
    assert given == FunnelParams(category_windows=(("c1", (("seed_window_days", 5.0), ("conversion_window_days", 1.0))),))
    assert FunnelParams(category_windows={}) == FunnelParams()


def test_windows_of_a_category_the_seeds_do_not_list_are_refused():
    params = FunnelParams(category_windows={"cat_skincare": {"seed_window_days": 29}, "cat_babby": {"seed_window_days": 70}})
    params.check_categories(["cat_skincare", "cat_babby"])
    with pytest.raises(SettingsError, match=r"names category 'cat_babby', which seeds/categories\.csv does not list .*did you mean 'cat_baby'\?"):
        params.check_categories(["cat_skincare", "cat_baby"], "seeds/categories.csv")


def test_bad_environment_values_are_refused(monkeypatch):
    monkeypatch.setenv(env_name("quality", "min_id_link_rate"), "lots")
    with pytest.raises(SettingsError, match=r"SEEDFUNNEL_QUALITY__MIN_ID_LINK_RATE='lots' is not a valid"):
        Settings()
    monkeypatch.setenv(env_name("quality", "min_id_link_rate"), "2")
    with pytest.raises(SettingsError, match=r"must be within \[0, 1\] \(from env SEEDFUNNEL_QUALITY__MIN_ID_LINK_RATE\)"):
        Settings()
    monkeypatch.delenv(env_name("quality", "min_id_link_rate"))
    monkeypatch.setenv("SEEDFUNNEL_QUALITY__MIN_LINK_RATE", "0.3")
    with pytest.raises(SettingsError, match=r"unknown setting 'SEEDFUNNEL_QUALITY__MIN_LINK_RATE'; did you mean"):
        Settings()


def test_a_named_config_that_is_missing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match=r"SEEDFUNNEL_CONFIG names .*nope\.toml, which is not a file"):
        Settings()


def test_settings_command_prints_every_value_with_its_source_and_masks_secrets(tmp_path, monkeypatch):
    _write(tmp_path / CONFIG_FILE, EXAMPLE)
    monkeypatch.setenv("SEEDFUNNEL_WAREHOUSE_URL", "postgresql+psycopg://analyst:s3cret-pw@db.internal/wh")
    monkeypatch.setenv(env_name("funnel", "boost_top_n"), "20")
    result = cli.invoke(app, ["settings", "--json", "--landing", str(tmp_path / "in")])
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    out = json.loads(result.stdout)
    assert out["warehouse_url"] == {"value": "postgresql+psycopg://analyst:***@db.internal/wh", "source": "env SEEDFUNNEL_WAREHOUSE_URL"}
    assert out["landing"] == {"value": str(tmp_path / "in"), "source": "argument"}
    assert out["funnel.seed_window_days"]["source"] == f"file {tmp_path / CONFIG_FILE}"
    assert out["funnel.boost_top_n"] == {"value": "20", "source": "env SEEDFUNNEL_FUNNEL__BOOST_TOP_N"}
    assert out["quality.max_quarantine_rate"] == {"value": "0.05", "source": "default"}
    every = {f"funnel.{k}" for k in FunnelParams.__dataclass_fields__} | {
        f"quality.{k}" for k in QualityParams.__dataclass_fields__
    }
    assert every <= set(out) and {"home", "landing", "seeds", "buckets", "config"} <= set(out)
    table = cli.invoke(app, ["settings"])
    assert table.exit_code == 0 and "s3cret-pw" not in table.output
    assert "funnel.seed_window_days" in table.output and "env SEEDFUNNEL_WAREHOUSE_URL" in table.output


def test_settings_command_names_a_bad_file(tmp_path):
    bad = _write(tmp_path / "bad.toml", "[funnel]\nseed_window_days = -1\n")
    result = cli.invoke(app, ["--config", str(bad), "settings"])
    assert result.exit_code == 2
    assert "funnel.seed_window_days = -1.0 must be > 0" in result.output and "bad.toml" in result.output


def test_toml_output_round_trips(tmp_path):
    _write(tmp_path / CONFIG_FILE, EXAMPLE)
    result = cli.invoke(app, ["settings", "--toml"])
    assert result.exit_code == 0, result.output
    again = _write(tmp_path / "copy" / "again.toml", result.stdout)
    original, copy = Settings(), Settings(config=again)
    assert (copy.home, copy.funnel, copy.quality, copy.buckets) == (
        original.home.resolve(), original.funnel, original.quality, original.buckets
    )


def test_airflow_tasks_resolve_the_callers_settings(tmp_path):
    # The local Airflow driver hands its tasks SEEDFUNNEL_CONFIG (a file with every resolved value)
    # and the folders; a task's Settings() then equals the caller's, funnel and quality included.
    caller = Settings(
        home=tmp_path / "home",
        landing=tmp_path / "landing",
        buckets=2,
        funnel=FunnelParams(seed_window_days=5, touch_kinds=("read",), category_windows={"cat_baby": {"seed_window_days": 70}}),
        quality=QualityParams(min_id_link_rate=0.15, max_event_lag_hours=30),
    )
    config = write_settings_file(caller, tmp_path / "airflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDFUNNEL_")}
    env.update(settings_env(caller, config))
    code = (
        "import json; from dataclasses import asdict; from pipelines.settings import Settings; s = Settings(); "
        "print(json.dumps({'home': str(s.home), 'buckets': s.buckets, 'funnel': asdict(s.funnel), "
        "'quality': asdict(s.quality), 'config': s.sources['config']}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    task = json.loads(run.stdout)
    assert task["home"] == str(caller.home.resolve()) and task["buckets"] == 2
    assert task["config"] == ENV_CONFIG
    assert FunnelParams(**{k: tuple(map(tuple, v)) if k == "kind_weights" else tuple(v) if k == "touch_kinds" else v
                           for k, v in task["funnel"].items()}) == caller.funnel
    assert QualityParams(**task["quality"]) == caller.quality
    # The file holds no warehouse URL: it travels in SEEDFUNNEL_WAREHOUSE_URL.
    assert "warehouse_url =" not in config.read_text(encoding="utf-8")


def test_every_key_is_documented():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text(encoding="utf-8")
    for cls in (FunnelParams, QualityParams):
        for name, f in cls.__dataclass_fields__.items():
            assert f"| `{name}` |" in doc, f"docs/settings.md lacks {name}"
            assert f.metadata.get("doc"), f"{cls.__name__}.{name} has no meaning"
