"""Pix2Pix training: L1 goes down, the weight schedule, checkpoint/resume, train_purifier,
and two steps under MirroredStrategy on two logical CPUs matching one device."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from advlab import training
from advlab.config import get_config
from advlab.purifiers import residual_cgan as rc

TINY = rc.CGANConfig(residual_blocks=0, base_filters=4, max_filters=8, disc_filters=4, dropout=0.0,
                     perceptual="none", batch_size=4, epochs=3)
ROOT = Path(__file__).resolve().parents[1]


def _pairs(n=8, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 28, 28, 1)) > 0.7).astype(np.float32)
    x = np.clip(y + rng.choice([-0.3, 0.3], size=y.shape), 0, 1).astype(np.float32)
    return x, y


@pytest.mark.parametrize("epochs, expected", [
    (10, [100] * 4 + [50] * 3 + [1] * 3),
    (100, [100] * 40 + [50] * 30 + [1] * 30),       # the paper's epochs 0-39 / 40-69 / 70-99
])
def test_scheduled_weights_phases(epochs, expected):
    got = [training.scheduled_weights(e, epochs)["lambda_perc"] for e in range(epochs)]
    assert got == expected
    assert all(training.scheduled_weights(e, epochs)["lambda_l1"] == 100 for e in range(epochs))


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        training.scheduled_weights(5, 5)
    with pytest.raises(ValueError, match="sum to 1"):
        training.WeightSchedule(10, phases=((0.5, {"lambda_perc": 1.0}),))


def test_training_lowers_l1_and_schedule_sets_weights_each_epoch():
    x, y = _pairs()
    trainer = rc.make_trainer((28, 28, 1), TINY.replace(schedule="multistep", learning_rate=2e-3))
    before = float(trainer.compute_losses(x, y, training=True)[0]["l1"])
    seen = []

    class Spy(training.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(self.model.lambda_perc.numpy()))

    hist = trainer.fit(x, y, batch_size=4, epochs=10, shuffle=False, verbose=0,
                       callbacks=[training.WeightSchedule(10), Spy()])
    after = float(trainer.compute_losses(x, y, training=True)[0]["l1"])
    assert after < 0.8 * before, (before, after)
    assert seen == [100.0] * 8 + [50.0] * 6 + [1.0] * 6        # 2 steps per epoch
    assert hist.history["lambda_perc"] == [100.0] * 4 + [50.0] * 3 + [1.0] * 3


def test_checkpoint_restores_weights_step_epoch_and_optimizer(tmp_path):
    x, y = _pairs()
    a = rc.make_trainer((28, 28, 1), TINY)
    a.fit(x, y, batch_size=4, epochs=1, verbose=0)
    saver = training.Checkpointer(tmp_path, a)
    saver.save(epoch=7)
    b = rc.make_trainer((28, 28, 1), TINY)
    restorer = training.Checkpointer(tmp_path, b)
    assert restorer.restore() == 7
    assert restorer.step == saver.step == 2
    for m_a, m_b in ((a.generator, b.generator), (a.discriminator, b.discriminator)):
        for wa, wb in zip(m_a.get_weights(), m_b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    for opt_a, opt_b in ((a.g_optimizer, b.g_optimizer), (a.d_optimizer, b.d_optimizer)):
        assert len(opt_a.variables) == len(opt_b.variables) > 2
        for va, vb in zip(opt_a.variables, opt_b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))


def test_checkpointer_without_checkpoint_starts_at_zero(tmp_path):
    assert training.Checkpointer(tmp_path, rc.make_trainer((28, 28, 1), TINY)).restore() == 0


def test_train_purifier_resumes_and_writes_run_folder(tmp_path, capsys):
    x, y = _pairs()
    out = tmp_path / "run"
    before = x.copy()
    p1 = training.train_purifier(x, y, TINY.replace(epochs=1), out, verbose=0, samples=2)
    np.testing.assert_array_equal(x, before)                       # inputs never mutated
    assert [r["epoch"] for r in p1.history] == [1]
    p2 = training.train_purifier(x, y, TINY.replace(epochs=2), out, verbose=0, samples=2)
    assert "resuming" in capsys.readouterr().out
    assert [r["epoch"] for r in p2.history] == [1, 2]
    assert p2.info["epochs"] == 2 and p2.info["train_time_s"] > 0
    assert int(p2.trainer.g_optimizer.iterations.numpy()) == 4     # 2 epochs x 2 steps, not restarted
    for name in ("generator.keras", "history.csv", "train_info.json", "run.json",
                 "samples_epoch001.png", "samples_epoch002.png"):
        assert (out / name).is_file(), name
    reloaded = rc.load_purifier(out)
    np.testing.assert_allclose(reloaded(x), p2(x), atol=1e-5)
    with pytest.raises(ValueError, match="another configuration"):
        training.train_purifier(x, y, TINY.replace(base_filters=8, epochs=2), out, verbose=0)


def test_learning_rate_decay_schedule():
    lrs = [training.decayed_learning_rate(e, 6, 1e-3, 0.5) for e in range(6)]
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 1e-3, 0.75e-3, 0.5e-3, 0.25e-3])   # never 0
    assert [training.decayed_learning_rate(e, 3, 1.0, 0.0) for e in range(3)] == [0.75, 0.5, 0.25]
    with pytest.raises(ValueError, match="lr_decay_start"):
        training.decayed_learning_rate(0, 4, 1e-3, 1.0)
    with pytest.raises(ValueError, match="lr_decay_start"):
        TINY.replace(lr_decay_start=-0.1)


def test_train_purifier_decays_the_learning_rate_and_resumes_older_runs(tmp_path):
    x, y = _pairs()
    out = tmp_path / "run"
    p = training.train_purifier(x, y, TINY.replace(lr_decay_start=0.5, learning_rate=1e-3, epochs=4), out,
                                verbose=0, samples=0)
    np.testing.assert_allclose([r["lr"] for r in p.history], [1e-3, 1e-3, 2 / 3 * 1e-3, 1 / 3 * 1e-3], rtol=1e-5)
    for opt in (p.trainer.g_optimizer, p.trainer.d_optimizer):
        assert float(opt.learning_rate.numpy()) == pytest.approx(1 / 3 * 1e-3, rel=1e-5)
    # a run folder written before lr_decay_start existed resumes under the default (None)
    out2 = tmp_path / "old"
    training.train_purifier(x, y, TINY.replace(epochs=1), out2, verbose=0, samples=0)
    run = json.loads((out2 / "run.json").read_text())
    del run["config"]["lr_decay_start"]
    (out2 / "run.json").write_text(json.dumps(run))
    assert [r["epoch"] for r in training.train_purifier(x, y, TINY.replace(epochs=2), out2, verbose=0,
                                                        samples=0).history] == [1, 2]


def test_train_purifier_takes_one_config_extra_callbacks_and_tensorboard(tmp_path):
    x, y = _pairs()
    seen = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(logs))

    has_tb = importlib.util.find_spec("tensorboard") is not None
    if not has_tb:
        with pytest.raises(ImportError, match="pip install tensorboard"):
            training.train_purifier(x, y, TINY, tmp_path / "run", tensorboard_dir=tmp_path / "tb")
    p = training.train_purifier(x, y, TINY.replace(epochs=1), tmp_path / "run", callbacks=[Count()],
                                tensorboard_dir=tmp_path / "tb" if has_tb else None, verbose=0, samples=0)
    assert len(seen) == 1 and "l1" in seen[0]                   # runs after the lab's own callbacks
    assert not has_tb or list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert p.train_seconds == p.info["train_time_s"] > 0 and p.source == str(tmp_path / "run")
    with pytest.raises(TypeError, match="CGANConfig"):
        training.train_purifier(x, y, get_config("smoke"), tmp_path / "old")      # the old cfg argument
    with pytest.raises(TypeError, match=r"config.replace\(epochs=...\)"):
        training.train_purifier(x, y, TINY, tmp_path / "old", epochs=2)


@pytest.mark.parametrize("bad, match", [
    (lambda x, y: (x * 2, y), r"\[0, 1\]"), (lambda x, y: (x[:4], y), "same shape"),
    (lambda x, y: (x[..., 0], y[..., 0]), "4-D"), (lambda x, y: (np.full_like(x, np.nan), y), "NaN"),
])
def test_train_purifier_rejects_bad_data(tmp_path, bad, match):
    x, y = bad(*_pairs())
    with pytest.raises(ValueError, match=match):
        training.train_purifier(x, y, TINY, tmp_path)


DISTRIBUTED = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from advlab.purifiers import residual_cgan as rc
    cfg = rc.CGANConfig(residual_blocks=1, base_filters=4, max_filters=8, disc_filters=4,
                        dropout=0.0, perceptual="none", batch_size=8)
    rng = np.random.default_rng(0)
    y = (rng.random((16, 28, 28, 1)) > 0.7).astype("float32")
    x = np.clip(y + rng.normal(0, 0.2, y.shape), 0, 1).astype("float32")
    ref = rc.make_trainer((28, 28, 1), cfg)
    init = (ref.generator.get_weights(), ref.discriminator.get_weights())

    def run(strategy):
        with strategy.scope():
            tr = rc.make_trainer((28, 28, 1), cfg)
        tr.generator.set_weights(init[0]); tr.discriminator.set_weights(init[1])
        steps = []
        cb = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda b, logs: steps.append({k: float(v) for k, v in logs.items()}))
        tr.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
        return {"steps": steps, "replicas": strategy.num_replicas_in_sync,
                "g0": float(np.asarray(tr.generator.trainable_variables[0]).sum())}

    one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print("RESULT" + json.dumps({"one": one, "two": two}))
""")


@pytest.mark.slow
def test_two_steps_mirrored_two_cpus_match_one_device(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", DISTRIBUTED], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.split("RESULT", 1)[1])
    one, two = res["one"], res["two"]
    assert one["replicas"] == 1 and two["replicas"] == 2
    assert len(one["steps"]) == len(two["steps"]) == 2
    for s1, s2 in zip(one["steps"], two["steps"]):
        for key in ("g_loss", "gan", "l1", "d_loss"):
            assert s2[key] == pytest.approx(s1[key], rel=1e-3, abs=1e-5), (key, s1, s2)
    assert two["g0"] == pytest.approx(one["g0"], rel=1e-3, abs=1e-5)
