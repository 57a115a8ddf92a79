"""train_purifier under MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 take the
same steps with the same losses (and validation L1) as one process, and only the chief writes
the run folder.

Data: ``fit`` on numpy arrays batches them with the global ``batch_size``; Keras marks that
dataset ``AutoShardPolicy.DATA`` and tf.distribute splits each global batch between the
workers, so N workers see the batches one process sees (the per-step losses below check it)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from advlab import training

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # every process is killed after this: a lost peer must never hang CI (35 s alone;
                 # make test's other xdist worker shares the CPU)

WORKER = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    role, out = sys.argv[1], sys.argv[2]
    strategy = (tf.distribute.MultiWorkerMirroredStrategy() if role == "worker"
                else tf.distribute.OneDeviceStrategy("/cpu:0"))
    import keras, numpy as np
    from advlab import training
    from advlab.purifiers import residual_cgan as rc
    cfg = rc.CGANConfig(residual_blocks=0, base_filters=4, max_filters=8, disc_filters=4, dropout=0.0,
                        perceptual="none", batch_size=8, epochs=2)
    rng = np.random.default_rng(0)
    y = (rng.random((16, 28, 28, 1)) > 0.7).astype("float32")
    x = np.clip(y + rng.normal(0, 0.2, y.shape), 0, 1).astype("float32")
    steps = []
    cb = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: steps.append({k: float(v) for k, v in logs.items()}))
    pur = training.train_purifier(x, y, cfg, out, strategy=strategy, samples=0, callbacks=[cb], verbose=0,
                                  validation=(x[:8], y[:8]))
    print("RESULT" + json.dumps({
        "steps": steps, "replicas": strategy.num_replicas_in_sync,
        "chief": strategy.extended.should_checkpoint, "source": pur.source,
        "g_sum": float(sum(np.asarray(v).sum() for v in pur.trainer.generator.trainable_variables))}))
""")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _launch(script: Path, role: str, out: Path, tf_config: dict | None, cwd: Path) -> subprocess.Popen:
    # one thread each: three processes share the CPU, and every step waits for the slowest worker
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TMPDIR=str(cwd / "tmp"))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, str(script), role, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def _results(procs: dict) -> dict:
    """Each process's RESULT; all are killed if one fails or the time limit passes."""
    deadline, done = time.monotonic() + TIMEOUT_S, {}
    try:
        for name, proc in procs.items():
            try:
                stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} still running after {TIMEOUT_S} s (killed)")
            assert proc.returncode == 0, f"{name} failed:\n{stderr[-3000:]}"
            done[name] = json.loads(stdout.split("RESULT", 1)[1])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return done


@pytest.mark.slow
def test_two_workers_on_localhost_match_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    (tmp_path / "tmp").mkdir()   # the workers' TMPDIR, where the non-chief keeps its scratch folder
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    procs = {f"worker{i}": _launch(script, "worker", tmp_path / "run", {"cluster": cluster,
                                   "task": {"type": "worker", "index": i}}, tmp_path) for i in (0, 1)}
    procs["single"] = _launch(script, "single", tmp_path / "single", None, tmp_path)
    res = _results(procs)

    one, chief, other = res["single"], res["worker0"], res["worker1"]
    assert one["replicas"] == 1 and chief["replicas"] == other["replicas"] == 2
    assert chief["chief"] and not other["chief"]
    assert len(one["steps"]) == len(chief["steps"]) == len(other["steps"]) == 4   # 2 epochs x 2 steps
    for s1, s2, s3 in zip(one["steps"], chief["steps"], other["steps"]):
        for key in ("g_loss", "gan", "l1", "d_loss"):
            assert s2[key] == pytest.approx(s1[key], rel=1e-3, abs=1e-5), (key, s1, s2)
            assert s3[key] == pytest.approx(s2[key], rel=1e-6, abs=1e-7), (key, s2, s3)
    assert chief["g_sum"] == pytest.approx(one["g_sum"], rel=1e-3, abs=1e-4)
    assert other["g_sum"] == pytest.approx(chief["g_sum"], rel=1e-6)

    # one run folder, written by the chief; the other worker's scratch copy is gone
    run = tmp_path / "run"
    assert chief["source"] == other["source"] == str(run)
    assert (run / "generator.keras").is_file() and (run / "history.csv").is_file()
    assert not list((tmp_path / "tmp").glob("advlab-worker-*"))
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in (tmp_path / "single").iterdir())
    history = {name: training.read_history(tmp_path / name) for name in ("run", "single")}
    assert [r["epoch"] for r in history["run"]] == [1, 2]
    for r2, r1 in zip(history["run"], history["single"]):
        assert r2["l1"] == pytest.approx(r1["l1"], rel=1e-3)
        assert r2["val_l1"] == pytest.approx(r1["val_l1"], rel=1e-3)


@pytest.mark.parametrize("resume", [True, False])
def test_worker_copy_holds_the_chiefs_checkpoints_when_resuming(tmp_path, resume):
    from advlab.training.runfolder import RunFolder

    chief = RunFolder(tmp_path / "run", {"run": 1})
    chief.check_or_write_fingerprint()
    for name in ("checkpoint", "ckpt-4.index", "ckpt-4.data-00000-of-00001", "history.csv",
                 "generator.keras"):
        (chief.path / name).write_text(name)
    with training._worker_copy(chief, resume) as scratch:
        copied = sorted(p.name for p in scratch.path.iterdir())
        assert scratch.fingerprint == chief.fingerprint and scratch.path != chief.path
    assert copied == (["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index", "history.csv", "run.json"]
                      if resume else [])
    assert not scratch.path.exists()
    assert len(list(chief.path.iterdir())) == 6   # the chief's folder is only read
