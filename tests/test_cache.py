"""advlab.io.cache: content keys, atomic writes, per-entry locks (two racing processes compute an
entry once), the run folder shared by the learners, and content-keyed resume state."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from advlab.io import cache

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- keys
def test_array_digest_is_content_dtype_and_shape():
    x = np.random.default_rng(0).random((4, 3, 3, 1), dtype=np.float32)
    assert cache.array_digest(x) == cache.array_digest(x.copy()) == cache.array_digest(np.asfortranarray(x))
    assert cache.array_digest(x[::2]) == cache.array_digest(x[::2].copy())        # views hash their content
    changed = x.copy()
    changed[1, 2, 2, 0] += 1e-6
    assert cache.array_digest(changed) != cache.array_digest(x)
    assert cache.array_digest(x.astype(np.float64)) != cache.array_digest(x)
    assert cache.array_digest(x.reshape(4, 9)) != cache.array_digest(x)
    assert cache.array_digest(x, x[:0]) != cache.array_digest(x)                  # every array counts
    assert len(cache.row_digests(x, np.arange(4))) == 4
    with pytest.raises(ValueError, match="one length"):
        cache.row_digests(x, np.arange(3))


def test_config_digest_and_cache_key_are_canonical():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Cfg:
        a: int = 1
        b: tuple = (0.1, 0.2)

    assert cache.config_digest(Cfg()) == cache.config_digest({"b": [0.1, 0.2], "a": 1})
    assert cache.config_digest(Cfg(a=2)) != cache.config_digest(Cfg())
    assert cache.cache_key(x=1, y="a") == cache.cache_key(y="a", x=1) != cache.cache_key(x=2, y="a")
    assert cache.cache_key(data=np.zeros(3)) == cache.cache_key(data=np.zeros(3))   # arrays by digest
    with pytest.raises(TypeError, match="Cannot make a cache key"):
        cache.cache_key(model=object())
    with pytest.raises(ValueError, match="at least one"):
        cache.cache_key()


def test_weights_digest_is_weights_not_name():
    import keras

    def net(name):
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name=name)

    a, b = net("first"), net("second")
    assert cache.weights_digest(a) == cache.weights_digest(b)
    w = b.get_weights()
    w[1] = w[1] + 1.0
    b.set_weights(w)
    assert cache.weights_digest(a) != cache.weights_digest(b)


# ----------------------------------------------------------------------------- writes
def test_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path):
    tmp_path = tmp_path / "entries"
    path = tmp_path / "entry.json"
    cache.save_json_atomic(path, {"v": 1})
    assert json.loads(path.read_text()) == {"v": 1}
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask           # not mkstemp's private 0600

    def half_then_fail(tmp):
        tmp.write_text('{"v": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.atomic_write(path, half_then_fail)
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json"]           # no temporary left
    cache.save_npz_atomic(tmp_path / "a.npz", x=np.arange(3))
    with np.load(tmp_path / "a.npz") as f:
        np.testing.assert_array_equal(f["x"], np.arange(3))
    with pytest.raises(ValueError, match=r"\.npz"):
        cache.save_npz_atomic(tmp_path / "a.tmp", x=np.arange(3))
    with pytest.raises(ValueError, match=r"\.keras"):
        cache.save_model_atomic(None, tmp_path / "m.h5")


def test_get_or_compute_computes_once_and_refreshes(tmp_path):
    path, calls = tmp_path / "v.json", []

    def compute():
        calls.append(1)
        cache.save_json_atomic(path, len(calls))
        return len(calls)

    load = lambda: json.loads(path.read_text()) if path.is_file() else None  # noqa: E731
    assert cache.get_or_compute(path, compute, load) == 1
    assert cache.get_or_compute(path, compute, load) == 1 and calls == [1]
    assert cache.get_or_compute(path, compute, load, refresh=True) == 2
    with cache.cache_lock(path), cache.cache_lock(path):          # re-entrant within a process
        from advlab.io.paths import cache_dir

        lock = cache.lock_path(path)
        assert lock.parent == cache_dir("locks") and lock.name.startswith("v.json.")
        assert cache.lock_path(tmp_path / "other" / "v.json") != lock               # by full path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "v.json"]      # no lock files here


RACER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import numpy as np

    shared, me = Path(sys.argv[1]), sys.argv[2]
    os.environ["ADVLAB_CACHE_DIR"] = str(shared / "cache")
    from advlab import attacks, classifiers
    from advlab.config import get_config
    from advlab.io import data

    def logged(fn, what, pause):
        def wrapper(*a, **k):
            with open(shared / "work.log", "a") as fh:      # O_APPEND: one line per computation
                fh.write(f"{me} {what}\\n")
            time.sleep(pause)                           # slow enough that the other process must wait
            return fn(*a, **k)
        return wrapper

    classifiers.train_classifier = logged(classifiers.train_classifier, "train", 1.0)
    attacks.attack = logged(attacks.attack, "attack", 1.0)
    (shared / f"ready_{me}").touch()
    while not all((shared / f"ready_{p}").exists() for p in ("a", "b")):
        time.sleep(0.05)
    cfg = get_config("smoke", n_train=64, n_test=16, classifier_epochs=1, seed=5, batch_size=32)
    model = classifiers.get_classifier("mnist", cfg, arch="mnist_mlp", verbose=False)
    x, y = data.load("mnist", "test", source="sample", limit=32, verbose=False)
    s = attacks.adversarial_set("mnist", "test", "fgsm", model, x, y, preset="mnist", chunk_size=16,
                                folder=shared / "adv", progress=False, verbose=False)
    np.savez(shared / f"out_{me}.npz", x_adv=s.x_adv, fingerprint=classifiers.fingerprint(model))
""")


@pytest.mark.slow
def test_two_processes_racing_for_one_entry_compute_it_once(tmp_path):
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), me], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for me in "ab"]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)
    work = (tmp_path / "work.log").read_text().split()
    assert work.count("train") == 1, work                  # one classifier training ...
    assert work.count("attack") == 2, work                 # ... and one attack of the 2 chunks
    a, b = (np.load(tmp_path / f"out_{me}.npz") for me in "ab")
    assert str(a["fingerprint"]) == str(b["fingerprint"])
    np.testing.assert_array_equal(a["x_adv"], b["x_adv"])
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers


# ----------------------------------------------------------------------------- one write path
WRITES = re.compile(r"np\.savez|\b\w*(model|generator|g_ac)\.save\(|\.write_text\(|\.write_bytes\(|json\.dump\("
                    r"|\bos\.(replace|rename)\(|\btmp\w*\.replace\(|\.tmp[\"'.]|open\([^)]*[\"'][wa]b?[\"']")
NOT_CACHES = {
    "advlab/io/cache.py": "the helper itself",
    "advlab/io/results.py": "save_csv's writer, which runs inside atomic_write",
    "advlab/cli/tour.py": "the tour's log, a stream written while the notebooks run (not a cache)",
}


def test_every_cache_write_goes_through_the_helper():
    stray = []
    for path in sorted((ROOT / "advlab").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in NOT_CACHES:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if WRITES.search(code) and not code.lstrip().startswith(("\"", "'", "``")):
                stray.append(f"{rel}:{n}: {line.strip()}")
    assert not stray, "write caches with advlab.io.cache (atomic_write, save_*_atomic):\n" + "\n".join(stray)


# ----------------------------------------------------------------------------- run folders
def test_run_folder_fingerprint_and_wall_clock(tmp_path):
    from advlab.training.runfolder import RunFolder

    run = RunFolder(tmp_path / "run", {"config": {"a": (1, 2)}, "data": "d1"})
    run.check_or_write_fingerprint()
    assert json.loads((run.path / "run.json").read_text()) == {"config": {"a": [1, 2]}, "data": "d1"}
    run.record_wall_clock(1.5, epochs=1, note="x")
    assert run.record_wall_clock(2.0, epochs=2)["train_time_s"] == pytest.approx(3.5)
    assert run.train_info()["note"] == "x" and run.train_info()["epochs"] == 2
    other = RunFolder(tmp_path / "run", {"config": {"a": [1, 2]}, "data": "d2"})
    with pytest.raises(ValueError, match="another configuration or data"):
        other.check_or_write_fingerprint()
    other.check_or_write_fingerprint(resume=False)                 # a fresh start clears the folder
    assert run.train_info() == {} and other.saved_fingerprint()["data"] == "d2"


def test_autoencoder_run_folder_loads_a_finished_run_and_refuses_other_data(tmp_path):
    from advlab.purifiers import autoencoder as ae

    rng = np.random.default_rng(0)
    x_c = rng.random((8, 8, 8, 1), dtype=np.float32)
    x_a = np.clip(x_c + 0.1, 0, 1).astype(np.float32)
    kw = dict(epochs=1, batch_size=4, filters=(4,), out_dir=tmp_path / "ae")
    first = ae.train_autoencoder(x_a, x_c, **kw)
    assert sorted(p.name for p in (tmp_path / "ae").iterdir() if not p.name.startswith("ckpt")) == [
        "autoencoder.keras", "checkpoint", "run.json", "train_info.json"]
    again = ae.train_autoencoder(x_a, x_c, **kw)                   # loaded, not retrained
    assert again.train_seconds == pytest.approx(first.train_seconds)
    np.testing.assert_allclose(again(x_a), first(x_a), atol=1e-6)
    with pytest.raises(ValueError, match="another configuration or data"):
        ae.train_autoencoder(x_c, x_c, **kw)


def test_a_residual_cgan_run_folder_of_an_older_advlab_still_resumes(tmp_path):
    import hashlib

    from advlab import training
    from advlab.purifiers import residual_cgan as rc

    tiny = rc.CGANConfig(residual_blocks=0, base_filters=4, max_filters=8, disc_filters=4, dropout=0.0,
                         perceptual="none", batch_size=4, epochs=1)
    rng = np.random.default_rng(0)
    x_clean = (rng.random((8, 28, 28, 1)) > 0.7).astype(np.float32)
    x_adv = np.clip(x_clean + 0.3, 0, 1).astype(np.float32)
    out = tmp_path / "run"
    training.train_purifier(x_adv, x_clean, tiny, out, verbose=0, samples=0)
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["digest"] == cache.array_digest(x_adv, x_clean)       # the full pairs
    legacy = hashlib.sha1(x_adv.tobytes() + x_clean.tobytes()).hexdigest()[:16]   # < 256 pairs: all of them
    run["data"] = {"shape": run["data"]["shape"], "sha1_subsample": legacy}
    (out / "run.json").write_text(json.dumps(run))
    resumed = training.train_purifier(x_adv, x_clean, tiny.replace(epochs=2), out, verbose=0, samples=0)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert json.loads((out / "run.json").read_text())["data"]["digest"] == cache.array_digest(x_adv, x_clean)
    with pytest.raises(ValueError, match="another configuration or data"):
        training.train_purifier(x_clean, x_clean, tiny.replace(epochs=2), out, verbose=0, samples=0)


# ----------------------------------------------------------------------------- content-keyed reuse
@pytest.fixture
def lab(mnist_sample, mnist_cnn):
    from advlab.config import get_config
    from advlab.experiments.pipeline import Lab

    x_tr, y_tr, x_te, y_te = mnist_sample
    cfg = get_config("smoke", n_train=32, n_test=20, attack_iters=3, batch_size=32)
    return Lab("mnist", cfg, "mnist_cnn", mnist_cnn, x_tr[:32], y_tr[:32], x_te[500:520], y_te[500:520],
               verbose=False)


@pytest.fixture
def attacked(monkeypatch):
    """The number of images actually attacked (calls to advlab.attacks.attack)."""
    from advlab import attacks

    seen, real = [], attacks.attack
    monkeypatch.setattr(attacks, "attack", lambda *a, **k: (seen.append(len(a[2])), real(*a, **k))[1])
    return seen


def test_lab_reuses_a_cached_attack_for_a_copy_or_slice_not_for_other_images(lab, attacked):
    import keras

    fn = lab.attack_fn("test")
    whole = fn("fgsm", lab.classifier, lab.x_test, lab.y_test)
    assert sum(attacked) == 20
    np.testing.assert_array_equal(fn("fgsm", lab.classifier, lab.x_test.copy(), lab.y_test.copy()), whole)
    np.testing.assert_array_equal(fn("fgsm", lab.classifier, lab.x_test[5:12], lab.y_test[5:12]), whole[5:12])
    np.testing.assert_array_equal(fn("fgsm", lab.classifier, lab.x_test[::-3], lab.y_test[::-3]), whole[::-3])
    twin = keras.models.clone_model(lab.classifier)                # another object, the same weights
    twin.set_weights(lab.classifier.get_weights())
    np.testing.assert_array_equal(fn("fgsm", twin, lab.x_test, lab.y_test), whole)
    assert sum(attacked) == 20, "a copy, a slice or the same weights must not re-attack"
    changed = lab.x_test.copy()
    changed[0] = 1.0 - changed[0]
    fn("fgsm", lab.classifier, changed, lab.y_test)                 # same shape and "name", other images
    assert sum(attacked) == 40


def test_two_purifier_folders_never_share_a_resumed_comparison_cell(lab, tmp_path, monkeypatch):
    from advlab.evaluation import comparison
    from advlab.purifiers import residual_cgan

    for k, folder in enumerate(("run_a", "run_b")):
        gen = residual_cgan.build_generator((28, 28, 1), residual_blocks=0, base_filters=4, max_filters=8)
        gen.set_weights([w + 0.01 * k for w in gen.get_weights()])  # two different generators
        cache.save_model_atomic(gen, tmp_path / folder / "generator.keras")
    measured = []
    real = comparison._accuracy
    monkeypatch.setattr(comparison, "_accuracy", lambda *a: (measured.append(1), real(*a))[1])

    def run(folder):
        measured.clear()
        plan = comparison.plan_for(lab.cfg, defences=("residual_cgan",), gray_attacks=("fgsm",),
                                   adaptive_attacks=(), channel_attack="fgsm", channels=(), n_eval=20,
                                   cgan_run=str(tmp_path / folder))
        result = comparison.run_comparison(lab, plan, progress=False, save=False)
        return len(measured), result.rows[0]

    n_a, row_a = run("run_a")
    assert n_a == 2                                                  # clean + gray-box fgsm
    n_b, row_b = run("run_b")
    assert n_b == 2, "the second folder's generator must be measured, not resumed from the first"
    n_again, row_again = run("run_a")
    assert n_again == 0 and row_again["gray-box:fgsm"] == row_a["gray-box:fgsm"]
