"""Provenance on every saved result, and figures/full/README.md generated from it."""
from __future__ import annotations

import json
import re
import socket
import sys

import numpy as np
import pytest

from advlab.io import cache, provenance, results


def _check_block(block: dict, config=None) -> None:
    assert set(provenance.FIELDS) <= set(block), sorted(block)
    assert isinstance(block["command"], str) and block["command"]
    assert block["config_digest"] == (None if config is None else cache.config_digest(config))
    commit = block["git"]["commit"]
    assert commit == "not a checkout" or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert block["git"]["dirty"] in (True, False, None)
    assert {"advlab", "tensorflow", "keras", "numpy", "cleverhans", "art"} <= set(block["versions"])
    assert block["versions"]["numpy"] == np.__version__
    assert block["device"]["cpu"] and isinstance(block["device"]["gpus"], list)
    assert block["started"] <= block["finished"]                        # ISO 8601 in UTC sorts as time


def test_save_json_adds_one_provenance_key_and_load_json_returns_the_object(tmp_path):
    cfg = {"scale": "smoke", "eps": 0.3}
    path = results.save_json({"acc": 0.5, "nan": float("nan")}, "demo", tmp_path, config=cfg)
    saved = json.loads(path.read_text())
    assert list(saved) == ["acc", "nan", "provenance"]
    _check_block(saved["provenance"], cfg)
    assert results.load_json("demo", tmp_path) == {"acc": 0.5, "nan": None}
    assert socket.gethostname() not in path.read_text()                 # hostname-free
    rows = [{"eps": 0.1, "accuracy": 0.9}]
    path = results.save_json(rows, "rows", tmp_path, started=0.0)        # a list is wrapped, then unwrapped
    assert set(json.loads(path.read_text())) == {"rows", "provenance"}
    assert results.load_json("rows", tmp_path) == rows
    assert provenance.read_provenance(path)["started"].startswith("1970-01-01")
    with pytest.raises(ValueError, match="provenance"):
        results.save_json({"provenance": 1}, "bad", tmp_path)


def test_command_line_and_checkout(monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", ["/usr/bin/python3", "-m", "advlab", "train", "--out", "a b"])
    assert provenance.command_line() == "python3 -m advlab train --out 'a b'"
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "ipykernel_launcher", "-f", "kernel.json"])
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/04_purifier.ipynb")
    assert provenance.command_line() == "notebooks/04_purifier.ipynb"
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert provenance.command_line() == "interactive"
    from advlab.io import paths

    provenance.git_state.cache_clear()
    monkeypatch.setattr(paths, "repo_root", lambda: None)
    try:
        assert provenance.git_state() == {"commit": "not a checkout", "dirty": None}
    finally:
        provenance.git_state.cache_clear()


def test_a_real_evaluation_at_smoke_scale_carries_the_block(mnist_sample, mnist_cnn, tmp_path):
    from advlab import attacks, evaluation
    from advlab.config import get_config
    from advlab.purifiers import Identity

    cfg = get_config("smoke")
    _, _, x, y = mnist_sample
    x, y = x[:16], y[:16]
    x_adv = attacks.attack("fgsm", mnist_cnn, x, y, eps=0.2, progress=False)
    result = evaluation.evaluate_purifier(mnist_cnn, Identity(), x, y, {"fgsm": x_adv}, timing=False)
    paths = evaluation.save_evaluation(result, "eval_smoke", tmp_path, config=cfg)
    saved = json.loads(paths["json"].read_text())
    _check_block(saved.pop("provenance"), cfg)
    assert saved["attacks"]["fgsm"]["n"] == 16 and saved == json.loads(json.dumps(result))
    assert "tensorflow" in sys.modules and isinstance(provenance.device()["gpus"], list)


def test_readme_is_generated_from_the_blocks_and_keeps_the_notes(tmp_path, capsys):
    folder = tmp_path / "full"
    folder.mkdir()
    results.save_json({"acc": 0.9}, "table1_new", folder, config={"budget": "cpu"})
    (folder / "old_table.json").write_text(json.dumps({"acc": 0.8}))       # written before provenance
    (folder / "notes_only.csv").write_text("a\n1\n")
    (folder / provenance.NOTES).write_text("| `old_table.*` | `python -m advlab train ...` | 80 % |\n")
    provenance.main([str(folder)])
    text = (folder / "README.md").read_text()
    assert str(folder / "README.md") in capsys.readouterr().out
    block = provenance.read_provenance(folder / "table1_new.json")
    row = next(line for line in text.splitlines() if line.startswith("| `table1_new.json`"))
    assert block["command"].split()[0] in row and cache.config_digest({"budget": "cpu"}) in row
    assert block["finished"] in row
    before = text.split("## Written before provenance", 1)[1]
    assert "- `old_table.json`" in before and "table1_new" not in before.split("## Notes")[0]
    assert "| `old_table.*` | `python -m advlab train ...` | 80 % |" in text.split("## Notes", 1)[1]
    assert provenance.readme(folder) == text                               # regenerating is stable
    with pytest.raises(SystemExit, match="not a folder"):
        provenance.main([str(tmp_path / "missing")])


def test_committed_reads_a_full_scale_record_or_says_it_is_missing(capsys):
    from advlab.io.results import committed

    record = committed("robustness_mnist_adv_pgd.json")
    assert record["n"] == 1000 and "provenance" not in record
    rows = committed("10_defences_mnist_full.csv")
    assert {"defence", "e2e:pgd"} <= set(rows[0])
    assert committed("no_such_record.json") is None
    assert "not found" in capsys.readouterr().out
