"""Cached adversarial sets: reuse, metadata mismatch, resume after interruption, corruption, composite."""
from __future__ import annotations

import json

import numpy as np
import pytest

from advlab import attacks
from advlab.attacks import datasets

FAST = {"eps": 0.2, "eps_iter": 0.05, "nb_iter": 4}


@pytest.fixture
def data(mnist_sample):
    _, _, x, y = mnist_sample
    return x[:48], y[:48]


@pytest.fixture
def counted(monkeypatch):
    """Counts the chunks actually attacked (calls to advlab.attacks.attack)."""
    calls = []
    real = attacks.attack

    def spy(*args, **kwargs):
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "attack", spy)
    return calls


def make(model, x, y, tmp_path, **kw):
    opts = dict(preset="mnist", chunk_size=16, batch_size=16, progress=False, folder=tmp_path, **FAST)
    opts.update(kw)
    return attacks.adversarial_set("mnist", "test", "pgd", model, x, y, **opts)


def test_generates_then_reuses_with_metadata(mnist_cnn, data, tmp_path, counted):
    x, y = data
    first = make(mnist_cnn, x, y, tmp_path)
    assert counted == [16, 16, 16]
    meta = json.loads((first.path / "meta.json").read_text())
    ident, res = meta["identity"], meta["results"]
    assert ident["attack"] == "pgd" and ident["params"]["eps"] == 0.2 and ident["split"] == "test"
    assert ident["dataset"] == "mnist" and len(ident["model_fingerprint"]) == 16
    assert {"tensorflow", "cleverhans", "art", "numpy"} <= set(ident["versions"])
    assert 0 < res["success_rate"] <= 1 and res["linf_max"] <= 0.2 + 1e-6 and res["l2_mean"] > 0
    assert sorted(p.name for p in first.path.iterdir()) == ["meta.json", "x_adv.npz"]
    second = make(mnist_cnn, x, y, tmp_path)
    assert counted == [16, 16, 16], "a matching cache must not be regenerated"
    np.testing.assert_array_equal(make(mnist_cnn, x, y, tmp_path, only_cached=True).x_adv, first.x_adv)
    before = set(tmp_path.iterdir())
    assert make(mnist_cnn, x[:32], y[:32], tmp_path, only_cached=True) is None   # other data: not cached
    assert counted == [16, 16, 16] and set(tmp_path.iterdir()) == before          # nothing attacked or made
    np.testing.assert_array_equal(first.x_adv, second.x_adv)
    np.testing.assert_array_equal(first.x_adv, make(mnist_cnn, x, y, tmp_path, cache=False).x_adv)


def test_changed_request_or_stale_metadata_regenerates(mnist_cnn, data, tmp_path, counted, capsys):
    x, y = data
    first = make(mnist_cnn, x, y, tmp_path)
    other = make(mnist_cnn, x, y, tmp_path, eps=0.1)               # other params -> other set
    assert other.path != first.path and np.abs(other.x_adv - x).max() <= 0.1 + 1e-6
    make(mnist_cnn, x[:32], y[:32], tmp_path)                      # other data -> other set
    assert len(counted) == 3 + 3 + 2
    meta_path = first.path / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["identity"]["model_fingerprint"] = "0" * 16                # stale file from another model
    meta_path.write_text(json.dumps(meta))
    again = make(mnist_cnn, x, y, tmp_path)
    assert "does not match" in capsys.readouterr().out
    assert len(counted) == 8 + 3
    np.testing.assert_array_equal(again.x_adv, first.x_adv)


def test_interrupted_generation_resumes(mnist_cnn, data, tmp_path, monkeypatch, capsys):
    x, y = data
    real = attacks.attack
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kernel interrupt")
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "attack", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        make(mnist_cnn, x, y, tmp_path)
    folder = next(q.parent for q in tmp_path.rglob("meta.json"))          # the set's folder, whatever else is beside it
    assert sorted(p.name for p in folder.glob("chunk_*.npz")) == ["chunk_00000.npz", "chunk_00001.npz"]
    calls.clear()
    monkeypatch.setattr(attacks, "attack", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    resumed = make(mnist_cnn, x, y, tmp_path)
    assert len(calls) == 1, "only the missing chunk is attacked"
    assert "resuming pgd: 2/3 chunks" in capsys.readouterr().out
    np.testing.assert_array_equal(resumed.x_adv, make(mnist_cnn, x, y, tmp_path, cache=False).x_adv)


def test_corrupted_cache_detected(mnist_cnn, data, tmp_path, capsys):
    x, y = data
    first = make(mnist_cnn, x, y, tmp_path)
    target = first.path / "x_adv.npz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(datasets.CacheCorrupt, match="SHA-256"):
        make(mnist_cnn, x, y, tmp_path, strict=True)
    fixed = make(mnist_cnn, x, y, tmp_path)
    assert "CORRUPT CACHE" in capsys.readouterr().out
    np.testing.assert_array_equal(fixed.x_adv, first.x_adv)
    target.write_bytes(target.read_bytes()[:100])                  # truncated file
    with pytest.raises(datasets.CacheCorrupt):
        make(mnist_cnn, x, y, tmp_path, strict=True)


def test_composite_keeps_attack_names(mnist_cnn, data, tmp_path):
    x, y = data
    pgd = make(mnist_cnn, x, y, tmp_path)
    fgsm = attacks.adversarial_set("mnist", "test", "fgsm", mnist_cnn, x[:20], y[:20], eps=0.2,
                                   progress=False, folder=tmp_path)
    comp = attacks.composite([pgd, fgsm])
    x_adv, x_clean, yy, names = comp
    assert len(x_adv) == len(x_clean) == len(yy) == len(names) == 68
    assert list(np.unique(names, return_counts=True)[1]) == [20, 48]
    np.testing.assert_array_equal(x_adv[names == "fgsm"], fgsm.x_adv)
    np.testing.assert_array_equal(x_clean[names == "pgd"], x)
    mixed = attacks.composite({"a": (pgd.x_adv, pgd.x, pgd.y), "b": fgsm}, shuffle=True, seed=0, per_attack=10)
    assert len(mixed.y) == 20 and set(mixed.attack) == {"a", "b"}
    for i in range(20):  # pairs stay aligned after shuffling
        src = pgd if mixed.attack[i] == "a" else fgsm
        j = np.flatnonzero((src.x_adv[:10] == mixed.x_adv[i]).all(axis=(1, 2, 3)))
        assert len(j) and src.y[j[0]] == mixed.y[i]
    with pytest.raises(ValueError, match="at least one"):
        attacks.composite([])
    with pytest.raises(TypeError, match="AdversarialSet"):
        attacks.composite([np.zeros(3)])
