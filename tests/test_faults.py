"""Fault injection: every long job killed with SIGKILL at a random point and rerun, a full disk,
a read-only cache folder. Marked ``faults``; part of the default run at smoke scale.

Each killed job (tests/fault_jobs.py) runs three times: once uninterrupted in the test's own
process (the reference, timed), then in a child process killed after a delay drawn uniformly
from that duration after the child's ``START`` marker (seeded), and once more in a child
in the killed run's folders to completion. Then:

* nothing the killed run left behind under a final name is partial: every ``.keras`` is a
  complete archive, every ``.npz`` reads in full, every ``.json`` parses (temporary files,
  whose names contain ``tmp``, and lock files are not results);
* the rerun's result equals the reference: **bitwise** for classifier training, attack
  crafting, the generalizability matrix and the comparison (seeded, deterministic on one
  machine); for purifier training every epoch appears once in the history, and the generator
  matches the reference to within 1e-6 if the rerun did not resume (killed before the first
  checkpoint), and otherwise to within a mean absolute difference of 5e-3 per pixel (measured:
  4e-5, max 3e-4, resumed after epoch 2 of 4), because a run resumed from an epoch checkpoint
  draws the remaining epochs' batch order and dropout masks afresh (see README, Determinism).
  This job is killed at a random point after its first checkpoint, so the rerun really resumes.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from bad_inputs import record

pytestmark = pytest.mark.faults
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KILL_SEED = 20260101


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """The target of the attack jobs: a small CNN trained for 1 epoch on the embedded sample."""
    from advlab import classifiers
    from advlab.io import data

    x, y = data.load("mnist", "train", source="sample", limit=1024, verbose=False)
    model = classifiers.build_classifier("mnist_cnn")
    classifiers.train_classifier(model, x, y, epochs=1, batch_size=64, verbose=0, seed=0)
    return classifiers.save_classifier(model, tmp_path_factory.mktemp("target") / "mnist_cnn.keras")


def _env(base: Path, classifier: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "ADVLAB_SCALE": "smoke",
           "ADVLAB_CACHE_DIR": str(base / "cache"), "ADVLAB_FIGURES_DIR": str(base / "figures"),
           "FAULT_CLASSIFIER": str(classifier)}
    env.pop("ADVLAB_DETERMINISTIC", None)
    return env


def _launch(job: str, base: Path, env: dict, log: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "fault_jobs.py"), job, str(base / "out")], cwd=base,
                            env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, **popen)


def _wait_for_start(proc: subprocess.Popen, log: Path, timeout: float = 120) -> float:
    t0 = time.perf_counter()
    while "START" not in log.read_text():
        if proc.poll() is not None or time.perf_counter() - t0 > timeout:
            raise AssertionError(f"job never started:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    return time.perf_counter()


def run_to_end(job: str, base: Path, classifier: Path, timeout: float = 300) -> float:
    """Run ``job`` to completion; returns the seconds from its START marker to its exit."""
    base.mkdir(parents=True, exist_ok=True)
    log = base / "log.txt"
    proc = _launch(job, base, _env(base, classifier), log)
    started = _wait_for_start(proc, log)
    assert proc.wait(timeout=timeout) == 0, log.read_text()[-4000:]
    return time.perf_counter() - started


def run_killed(job: str, base: Path, classifier: Path, duration: float, rng, after: str | None = None) -> bool:
    """Start ``job`` and SIGKILL it after a random fraction of ``duration``; True if it was killed.
    With ``after`` (a path under the job's folder) the delay starts once that file exists."""
    base.mkdir(parents=True, exist_ok=True)
    log = base / "log.txt"
    proc = _launch(job, base, _env(base, classifier), log)
    _wait_for_start(proc, log)
    if after is not None:
        while not (base / "out" / after).exists() and proc.poll() is None:
            time.sleep(0.02)
    time.sleep(rng.uniform(0.05, 0.95) * duration if after is None else rng.uniform(0.0, 0.1) * duration)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert killed or proc.returncode == 0, log.read_text()[-4000:]
    return killed


def assert_nothing_partial(base: Path) -> int:
    """Every file left under a final name reads completely; returns how many were checked."""
    from advlab.io.models import check_model_file

    checked = 0
    for path in sorted(p for p in base.rglob("*") if p.is_file() and p.name != "log.txt"):
        if "tmp" in path.name or path.suffix == ".lock":
            continue                                # a temporary file: never read as a result
        if path.suffix == ".keras":
            check_model_file(path)
        elif path.suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                assert z.testzip() is None, path
            with np.load(path) as f:
                assert all(f[key].size >= 0 for key in f.files), path     # decompresses every array
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            continue
        checked += 1
    return checked


def run_here(job: str, base: Path, classifier: Path, monkeypatch) -> float:
    """Run ``job`` uninterrupted in this process (saves a child's imports); returns its seconds."""
    import fault_jobs

    with monkeypatch.context() as m:
        for key, value in _env(base, classifier).items():
            if key.startswith(("ADVLAB_", "FAULT_")):
                m.setenv(key, value)
        (base / "out").mkdir(parents=True)
        t0 = time.perf_counter()
        fault_jobs.JOBS[job](base / "out")
        return time.perf_counter() - t0


def kill_and_rerun(job: str, tmp_path: Path, classifier: Path, monkeypatch,
                   after: str | None = None) -> tuple[Path, Path, bool]:
    """Reference run, killed run, rerun; returns (reference folder, recovered folder, was killed)."""
    rng = np.random.default_rng([KILL_SEED, zlib.crc32(job.encode())])
    duration = run_here(job, tmp_path / "reference", classifier, monkeypatch)
    killed = run_killed(job, tmp_path / "faulted", classifier, duration, rng, after)
    assert_nothing_partial(tmp_path / "faulted")
    run_to_end(job, tmp_path / "faulted", classifier)
    assert_nothing_partial(tmp_path / "faulted")
    print(f"{job}: job took {duration:.1f} s, killed={killed}")
    return tmp_path / "reference", tmp_path / "faulted", killed


# --------------------------------------------------------------------------------- killed jobs
def test_classifier_training_killed_and_rerun(tmp_path, tiny_classifier, monkeypatch):
    from advlab.io.models import load_model

    ref, rec, _ = kill_and_rerun("classifier", tmp_path, tiny_classifier, monkeypatch)
    assert (ref / "out" / "fingerprint.txt").read_text() == (rec / "out" / "fingerprint.txt").read_text()
    # a SIGKILL mid-save can leave atomic_write's temporary file (".NAME.XXXX.tmp.keras"); nothing reads it
    saved = [sorted(p for p in (base / "cache" / "classifiers").glob("*.keras") if ".tmp." not in p.name)
             for base in (ref, rec)]
    assert [p.name for p in saved[0]] == [p.name for p in saved[1]] and len(saved[0]) == 1
    for w1, w2 in zip(load_model(saved[0][0]).weights, load_model(saved[1][0]).weights):
        np.testing.assert_array_equal(np.asarray(w1), np.asarray(w2))


def _cached_set(base: Path, classifier: Path):
    from advlab import attacks
    from advlab.io import data
    from advlab.io.models import load_model

    x, y = data.load("mnist", "test", source="sample", limit=96, verbose=False)
    return attacks.adversarial_set("mnist", "test", "pgd", load_model(classifier), x, y, preset="mnist",
                                   chunk_size=16, batch_size=16, folder=base / "cache" / "adversarial", progress=False,
                                   verbose=False, only_cached=True, nb_iter=10, eps_iter=0.05)


def test_attack_crafting_killed_and_rerun(tmp_path, tiny_classifier, monkeypatch):
    ref, rec, _ = kill_and_rerun("attack", tmp_path, tiny_classifier, monkeypatch)
    reference, recovered = _cached_set(ref, tiny_classifier), _cached_set(rec, tiny_classifier)
    assert reference is not None and recovered is not None
    np.testing.assert_array_equal(recovered.x_adv, reference.x_adv)
    assert recovered.meta["results"]["success_rate"] == reference.meta["results"]["success_rate"]


def test_purifier_training_killed_and_rerun(tmp_path, tiny_classifier, monkeypatch):
    from advlab.purifiers.residual_cgan import load_purifier
    from advlab.training import read_history

    # killed after its first epoch's checkpoint, so the rerun really resumes
    ref, rec, killed = kill_and_rerun("purifier", tmp_path, tiny_classifier, monkeypatch, after="run/checkpoint")
    assert [r["epoch"] for r in read_history(rec / "out" / "run")] == [1, 2, 3, 4]
    x = np.random.default_rng(1).uniform(0, 1, (8, 28, 28, 1)).astype(np.float32)
    out_ref, out_rec = (load_purifier(b / "out" / "run")(x) for b in (ref, rec))
    assert out_rec.shape == x.shape and 0 <= out_rec.min() and out_rec.max() <= 1
    resumed = "resuming" in (rec / "log.txt").read_text()
    if not (killed and resumed):            # trained from scratch in one go: the same run
        np.testing.assert_allclose(out_rec, out_ref, atol=1e-6)
    else:
        mae = float(np.abs(out_rec - out_ref).mean())
        print(f"purifier: resumed run vs uninterrupted, output MAE {mae:.2e}, max {np.abs(out_rec - out_ref).max():.2e}")
        assert mae < 5e-3


def test_experiment_killed_and_rerun(tmp_path, tiny_classifier, monkeypatch):
    ref, rec, _ = kill_and_rerun("experiment", tmp_path, tiny_classifier, monkeypatch)
    reference, recovered = (json.loads((b / "out" / "matrix.json").read_text()) for b in (ref, rec))
    assert recovered["accuracy"] == reference["accuracy"] and recovered["rows"] == reference["rows"]


TIMING_COLUMNS = ("ms_per_image", "train_s")


def test_comparison_killed_and_rerun(tmp_path, tiny_classifier, monkeypatch):
    ref, rec, _ = kill_and_rerun("comparison", tmp_path, tiny_classifier, monkeypatch)

    def rows(base):
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS}
                for r in json.loads((base / "out" / "rows.json").read_text())]

    assert rows(rec) == rows(ref)


# --------------------------------------------------------------------------------- write faults
def _failing_after(calls_ok: int, original, write_half, target: int = 0):
    """A stand-in for a write function that works ``calls_ok`` times, then writes half its output
    and fails with ENOSPC (a full disk), like a real write that runs out of space midway.
    ``target`` is the position of the file argument."""
    state = {"calls": 0}

    def write(*args, **kwargs):
        state["calls"] += 1
        if state["calls"] <= calls_ok:
            return original(*args, **kwargs)
        write_half(*args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[target]))
    return write


def _npz_half(target, *args, **kwargs):
    import io

    buf = io.BytesIO()
    _REAL_SAVEZ(buf, *args, **kwargs)
    raw = buf.getvalue()[: len(buf.getvalue()) // 2]
    if hasattr(target, "write"):
        target.write(raw)
    else:
        target = Path(target)
        target = target if target.suffix == ".npz" else target.with_name(target.name + ".npz")
        target.write_bytes(raw)


_REAL_SAVEZ = np.savez_compressed


def test_full_disk_while_crafting_leaves_a_valid_cache(tmp_path, tiny_classifier, monkeypatch):
    from advlab import attacks
    from advlab.io import data
    from advlab.io.models import load_model

    model = load_model(tiny_classifier)
    x, y = data.load("mnist", "test", source="sample", limit=48, verbose=False)
    kw = dict(preset="mnist", chunk_size=16, batch_size=16, folder=tmp_path / "adv", progress=False, verbose=False)
    reference = attacks.adversarial_set("mnist", "test", "fgsm", model, x, y, cache=False, **kw).x_adv
    monkeypatch.setattr(np, "savez_compressed", _failing_after(1, _REAL_SAVEZ, _npz_half))
    with pytest.raises(OSError, match="No space left on device") as err:
        attacks.adversarial_set("mnist", "test", "fgsm", model, x, y, **kw)
    assert err.value.errno == errno.ENOSPC
    record("a full disk while an adversarial set is written (simulated ENOSPC)", err.value,
           call="attacks.adversarial_set(...)")
    monkeypatch.setattr(np, "savez_compressed", _REAL_SAVEZ)
    assert_nothing_partial(tmp_path)
    assert attacks.adversarial_set("mnist", "test", "fgsm", model, x, y, only_cached=True, **kw) is None
    again = attacks.adversarial_set("mnist", "test", "fgsm", model, x, y, **kw)     # resumes, completes
    np.testing.assert_array_equal(again.x_adv, reference)
    np.testing.assert_array_equal(attacks.adversarial_set("mnist", "test", "fgsm", model, x, y, only_cached=True,
                                                          **kw).x_adv, reference)


def test_full_disk_while_saving_a_classifier_leaves_a_valid_cache(tmp_path, monkeypatch):
    import keras

    from advlab import classifiers
    from advlab.config import get_config

    cfg = get_config("smoke", n_train=128, n_test=32, classifier_epochs=1, batch_size=32)
    real_save = keras.Model.save

    def save_half(model, target, *args, **kwargs):
        real_save(model, target, *args, **kwargs)
        Path(target).write_bytes(Path(target).read_bytes()[:1000])

    monkeypatch.setattr(keras.Model, "save", _failing_after(0, real_save, save_half, target=1))
    with pytest.raises(OSError, match="No space left on device") as err:
        classifiers.get_classifier("mnist", cfg, arch="mnist_mlp", verbose=False)
    record("a full disk while a trained classifier is saved (simulated ENOSPC)", err.value,
           call="classifiers.get_classifier(...)")
    monkeypatch.setattr(keras.Model, "save", real_save)
    assert_nothing_partial(Path(os.environ["ADVLAB_CACHE_DIR"]) / "classifiers")
    model = classifiers.get_classifier("mnist", cfg, arch="mnist_mlp", verbose=False)   # retrains, saves
    again = classifiers.get_classifier("mnist", cfg, arch="mnist_mlp", verbose=False)   # loads
    assert classifiers.fingerprint(again) == classifiers.fingerprint(model)


class ReadOnly:
    """Makes ``folder`` behave as read-only for this process: creating, opening for writing,
    renaming or deleting anything inside it raises ``PermissionError(EACCES)``, as the kernel
    does for a non-root user in a ``chmod 0o555`` folder. (The tests run as root, which the
    permission bits do not bind, and the interpreter lives where another user cannot run it,
    so a child under ``os.setuid`` is not an option here.)"""

    def __init__(self, folder: Path, monkeypatch):
        self.folder = str(Path(folder).resolve())
        real_open, real_os_open = open, os.open

        def inside(path) -> bool:
            try:
                return str(Path(os.fspath(path)).resolve()).startswith(self.folder)
            except TypeError:                       # a file descriptor or file object
                return False

        def deny(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

        def guarded_open(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+") and inside(file):
                deny(file)
            return real_open(file, mode, *args, **kwargs)

        def guarded_os_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
                deny(path)
            return real_os_open(path, flags, *args, **kwargs)

        def guard(real, n_paths=1):
            def call(*args, **kwargs):
                for path in args[:n_paths]:
                    if inside(path):
                        deny(path)
                return real(*args, **kwargs)
            return call

        import builtins
        import io

        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(io, "open", guarded_open)
        monkeypatch.setattr(os, "open", guarded_os_open)
        for name, n in (("mkdir", 1), ("rename", 2), ("replace", 2), ("unlink", 1), ("remove", 1), ("rmdir", 1)):
            monkeypatch.setattr(os, name, guard(getattr(os, name), n))


def test_read_only_cache_folder_gives_a_clear_error_and_stays_valid(tmp_path, tiny_classifier, monkeypatch):
    from advlab import attacks
    from advlab.io import data
    from advlab.io.models import load_model

    model = load_model(tiny_classifier)
    x, y = data.load("mnist", "test", source="sample", limit=32, verbose=False)
    cache = tmp_path / "cache"
    kw = dict(preset="mnist", chunk_size=16, batch_size=16, progress=False, verbose=False)
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(cache))
    from advlab.io.paths import cache_dir

    made = attacks.adversarial_set("mnist", "test", "fgsm", model, x, y, **kw)          # one entry cached
    cached = sorted(p for p in cache.rglob("*") if p.is_file())
    os.chmod(cache_dir("adversarial"), 0o555)
    with monkeypatch.context() as m:
        ReadOnly(cache, m)
        again = attacks.adversarial_set("mnist", "test", "fgsm", model, x, y, **kw)    # reading still works
        np.testing.assert_array_equal(again.x_adv, made.x_adv)
        with pytest.raises(PermissionError, match="Permission denied") as err:
            attacks.adversarial_set("mnist", "test", "pgd", model, x, y, nb_iter=2, eps_iter=0.1, **kw)
    assert str(cache) in str(err.value), err.value
    record("a read-only cache folder (writes refused with EACCES) and an entry not cached yet", err.value,
           call="attacks.adversarial_set(...)")
    os.chmod(cache_dir("adversarial"), 0o755)
    assert sorted(p for p in cache.rglob("*") if p.is_file()) == cached          # nothing left behind
    assert_nothing_partial(cache)
    pgd = attacks.adversarial_set("mnist", "test", "pgd", model, x, y, nb_iter=2, eps_iter=0.1, **kw)  # next run
    np.testing.assert_array_equal(
        attacks.adversarial_set("mnist", "test", "pgd", model, x, y, nb_iter=2, eps_iter=0.1, only_cached=True,
                                **kw).x_adv, pgd.x_adv)


# --------------------------------------------------------------------------------- README table
def test_readme_table_of_bad_inputs_is_up_to_date():
    import bad_inputs

    expected = bad_inputs.render(bad_inputs.merged_rows())
    assert bad_inputs.readme_section() == expected, (
        "README.md's table of bad inputs differs from what the tests record. Run the tests that "
        f"record rows (tests/test_safe_loading.py, test_faults.py, test_properties.py), then "
        f"`{bad_inputs.REGENERATE}`.")
