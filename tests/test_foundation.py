"""Config, paths, import hygiene, result/figure helpers and environment files."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from advlab import config

ROOT = Path(__file__).resolve().parents[1]


def test_scale_presets_and_env(monkeypatch):
    monkeypatch.delenv("ADVLAB_SCALE", raising=False)
    assert config.get_config().scale == "smoke"
    monkeypatch.setenv("ADVLAB_SCALE", "FULL")
    cfg = config.get_config()
    assert cfg.scale == "full" and cfg.attack_iters == 40 and cfg.n_train is None
    assert config.get_config("smoke", n_test=5).n_test == 5
    with pytest.raises(Exception):
        cfg.n_test = 3  # frozen
    with pytest.raises(ValueError, match="Unknown scale 'huge'.*full.*smoke"):
        config.get_config("huge")
    with pytest.raises(TypeError, match="epochz"):
        config.get_config("smoke", epochz=1)


def test_import_does_no_heavy_work():
    code = ("import sys, advlab; assert 'tensorflow' not in sys.modules; "
            "assert 'numpy' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_figures_and_tables_go_to_figures_dir(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advlab.io import paths, results
    from advlab import viz

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = viz.savefig(fig, "demo")
    js = results.save_json({"acc": 0.5, "nan": float("nan")}, "demo")
    csv = results.save_csv([{"a": 1, "b": 2}, {"a": 3, "c": 4}], "demo")
    for p in (png, js, csv):
        assert p.parent == paths.figures_dir() and p.is_file()
    assert results.load_json("demo") == {"acc": 0.5, "nan": None}
    assert csv.read_text().splitlines() == ["a,b,c", "1,2,", "3,,4"]


def _names(specs):
    return {re.split(r"[<>=!~\[ ;]", s.strip(), maxsplit=1)[0].lower(): s.replace(" ", "") for s in specs}


def test_environment_yml_mirrors_pyproject():
    import yaml

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(pyproject["dependencies"]) + pyproject["optional-dependencies"]["cpu"] \
        + pyproject["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert any(str(d).startswith("python=3.11") for d in deps)
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    pip_specs = [p for p in pip if not p.startswith("-e")]
    assert _names(pip_specs) == _names(wanted)
    assert env["variables"]["KERAS_BACKEND"] == "tensorflow"


def test_budget_resolution(monkeypatch, capsys):
    from advlab.config import resolve_budget

    monkeypatch.setenv("ADVLAB_BUDGET", "CPU")
    assert resolve_budget() == "cpu" and "$ADVLAB_BUDGET" in capsys.readouterr().out
    assert resolve_budget("paper", verbose=False) == "paper"          # the argument wins
    monkeypatch.setenv("ADVLAB_BUDGET", "tiny")
    with pytest.raises(ValueError, match="Unknown budget 'tiny'.*ADVLAB_BUDGET"):
        resolve_budget()


def test_heatmap_text_stays_readable_on_light_and_dark_cells():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from advlab import viz

    g = np.array([[0.0, -0.01, -0.3], [0.3, 0.01, 0.0]])     # near 0: white cells of RdBu_r
    fig = viz.heatmap(g, ["a", "b"], ["x", "y", "z"], fmt="{:.2f}", cmap="RdBu_r", center=0.0)
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert colours["-0.01"] == colours["0.01"] == "black" and colours["-0.30"] == colours["0.30"] == "white"
    fig = viz.heatmap(np.array([[0.0, 100.0]]), ["a"], ["x", "y"], cmap="viridis")   # dark purple, bright yellow
    colours = [t.get_color() for t in fig.axes[0].texts]
    assert colours == ["white", "black"]
    plt.close("all")
