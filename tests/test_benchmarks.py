"""The benchmarks' output formats: train_levers.py, purify_latency.py --presets, classical_latency.py, as dry runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark_modules import load

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _run(script: str, *argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *argv], env=ENV,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def test_train_levers_reports_each_lever_beside_the_matmul_rates(tmp_path):
    out = tmp_path / "levers.json"
    done = _run("train_levers.py", "--quick", "--steps", "1", "--levers", "baseline,blocks3,bf16", "--out", str(out))
    data = json.loads(out.read_text())
    assert data["quick"] is True and set(data["matmul_gflop_per_s"]) == {"float32", "bfloat16"} and data["onednn"] is True
    assert all(v > 0 for v in data["matmul_gflop_per_s"].values()) and "provenance" in data
    levers = data["levers"]
    assert list(levers) == ["baseline", "blocks3", "bf16"]
    for name, r in levers.items():
        assert r["ms_per_step"] > 0 and r["first_step_s"] > 0 and r["losses_finite"] is True
        assert r["speedup"] == pytest.approx(levers["baseline"]["ms_per_pair_step"] / r["ms_per_pair_step"])
        assert r["recipe_steps"] == -(-data["pairs"] // data["batch"]) * data["epochs"]
        assert r["est_train_min"] == pytest.approx(r["recipe_steps"] * r["ms_per_step"] / 60000)
    assert levers["blocks3"]["changes"] == {"residual_blocks": 3}
    # the smoke budget's generator has 1 residual block per level: 3 cost more
    assert levers["blocks3"]["generator_gflop_per_image"] > levers["baseline"]["generator_gflop_per_image"]
    assert "bfloat16" in levers["bf16"]["dtypes"]["compute"]
    assert levers["bf16"]["not_float32"] == []                  # outputs and losses stay float32
    assert "speed-up over the baseline" in done.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_levers.py"), "--levers", "warp"],
                         env=ENV, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown lever" in bad.stderr


def test_the_paper_lever_is_the_paper_budgets_network():
    from advlab.config import resolve

    changes, jit = load("train_levers").LEVERS["paper"]
    cpu = resolve(scale="full", budget="cpu", job="table1", dataset="mnist").purifier
    paper = resolve(scale="full", budget="paper", job="table1", dataset="mnist").purifier
    fields = ("residual_blocks", "disc_residual_blocks", "base_filters", "max_filters", "disc_filters", "dropout")
    lever = cpu.replace(**changes)
    assert not jit and [getattr(lever, f) for f in fields] == [getattr(paper, f) for f in fields]
    assert [getattr(cpu, f) for f in fields] != [getattr(paper, f) for f in fields]


def test_purify_latency_presets_writes_trained_and_folded_timings(tmp_path):
    done = _run("purify_latency.py", "--presets", "fast", "--batches", "1,16", "--repeats", "1",
                "--single", "2", "--out", str(tmp_path))
    data = json.loads((tmp_path / "purify_latency_presets.json").read_text())
    assert set(data["matmul_gflop_per_s"]) == {"before", "after"} and data["batches"] == [1, 16]
    row = data["presets"]["fast"]
    assert (row["budget"], row["overrides"], row["residual_blocks"], row["base_filters"]) == ("fast", {}, 3, 16)
    assert row["fold_max_abs_diff"] < 1e-4 and row["gflop_per_image"] > 0
    for kind in ("trained", "folded", "folded_xla"):
        for bs in (1, 16):
            assert row[kind][f"ms_per_image_batch{bs}"] > 0
            assert row[kind][f"of_matmul_rate_batch{bs}"] == pytest.approx(
                row[kind][f"gflop_per_s_batch{bs}"] / data["matmul_gflop_per_s"]["before"])
    assert "fast" in done.stdout and not (tmp_path / "purify_latency_presets.png").exists()   # no batch 256


def test_pareto_figure_marks_the_front(tmp_path):
    latency = load("purify_latency")
    rows = {name: {"folded": {"ms_per_image_batch256": ms}, "defended": {"mean_attacked": acc}}
            for name, ms, acc in (("a", 0.1, 97.0), ("b", 0.3, 98.5), ("c", 0.5, 98.0), ("d", 0.2, None))}
    rows["d"]["defended"] = None                                   # no record: not drawn
    path = latency.pareto_figure(rows, tmp_path)
    assert path.name == "purify_latency_presets.png" and path.stat().st_size > 1000
    assert set(latency.PRESETS) >= {"cpu", "cpu_3blocks", "fast"}
    gen, run = latency.preset_generator("cpu_3blocks")
    assert run.purifier.residual_blocks == 3 and run.purifier.base_filters == 32 and gen.name == "G_cpu_3blocks"


def test_classical_latency_times_every_defence_and_tvm_beside_art(tmp_path):
    from advlab.purifiers import classical

    out = tmp_path / "classical.json"
    done = _run("classical_latency.py", "--n", "8", "--repeats", "1", "--out", str(out))
    data = json.loads(out.read_text())
    assert set(data["defences"]) == set(classical.CLASSICAL) and data["matmul_gflop_per_s"] > 0
    assert all(r["ms_per_image"] > 0 for r in data["defences"].values()) and "provenance" in data
    tvm = data["defences"]["tvm"]
    assert tvm["speedup_over_art"] == pytest.approx(tvm["art_ms_per_image"] / tvm["ms_per_image"])
    obj = tvm["objective"]                               # same masks: both minimise from the input
    assert obj["batched"] < obj["input"] and obj["art"] < obj["input"]
    assert obj["batched"] <= 1.02 * obj["art"] and tvm["mean_abs_difference_to_art"] < 0.02
    assert "ART's loop" in done.stdout
