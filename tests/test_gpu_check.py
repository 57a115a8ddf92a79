"""benchmarks/gpu_check.py: its CPU dry run writes the JSON a GPU run would, flagged as CPU numbers."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from benchmark_modules import load

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def test_quick_run_writes_the_check_json(tmp_path):
    out = tmp_path / "out" / "gpu_check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--no-tests", "--steps", "2", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)    # in conftest's empty cwd
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no GPU: CPU numbers, not a GPU check" in done.stdout
    assert list(out.parent.iterdir()) == [out]

    data = json.loads(out.read_text())
    assert {"gpu", "warning", "device", "tests", "training", "purification", "failed_checks",
            "provenance"} <= set(data)
    assert data["gpu"] is False and data["warning"] == "no GPU: CPU numbers, not a GPU check"
    assert data["tests"] == {"ran": False} and data["failed_checks"] == []
    assert data["device"]["tensorflow"] and data["device"]["keras"] and data["device"]["gpus"] == []

    training = data["training"]
    assert training["mixed_policy"] == "mixed_bfloat16" and training["steps"] == 2
    for policy in ("float32", "mixed_bfloat16"):
        run = training[policy]
        assert run["ms_per_step"] > 0 and run["first_step_s"] > 0 and run["losses_finite"] is True
        assert set(run["final_losses"]) == {"g_loss", "gan", "l1", "perc", "d_loss"}
        assert run["not_float32"] == [] and run["global_policy_after"] == "float32"
        assert set(data["purification"][policy]) == {"ms_per_image_batch1", "ms_per_image_batch16"}
    assert "bfloat16" in training["mixed_bfloat16"]["dtypes"]["compute"]      # the policy took effect
    assert training["float32"]["dtypes"]["compute"] == ["float32"]
    assert math.isclose(training["mixed_speedup"],
                        training["float32"]["ms_per_step"] / training["mixed_bfloat16"]["ms_per_step"])
    assert data["purification"]["gflop_per_image"] > 0 and data["purification"]["matmul_gflop_per_s"] > 0
    assert all(math.isfinite(v) for v in _numbers({k: v for k, v in data.items() if k != "provenance"}))


def test_pytest_counts_reads_the_summary_line():
    counts = load("gpu_check").pytest_counts
    assert counts("....F\n=== 4 passed, 1 failed, 2 skipped, 1 error in 3.2s ===") == {
        "passed": 4, "failed": 1, "errors": 1, "skipped": 2}
    assert counts("no summary") == {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
