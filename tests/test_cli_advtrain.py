"""``advlab advtrain``: its help, and a tiny run at smoke scale that completes and resumes (seconds)."""
import json
import shlex

import numpy as np
import pytest

from advlab import cli

TINY = ["advtrain", "--scale", "smoke", "--method", "pgd", "--steps", "2", "--epochs", "1", "--n-train", "240",
        "--holdout", "40", "--probe-steps", "2", "--batch-size", "64", "--quiet"]


def test_help_shows_examples_that_parse(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["advtrain", "--help"])
    assert exit_.value.code == 0
    examples = capsys.readouterr().out.split("examples:\n", 1)[1]
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    assert lines and all(line.startswith("advlab advtrain") for line in lines)
    for line in lines:
        args = cli.build_parser().parse_args(shlex.split(line)[1:])
        assert args.run.__name__ == "cmd_advtrain"


def test_tiny_run_completes_then_resumes_from_its_checkpoint(tmp_path):
    from advlab.classifiers import load_classifier

    out = tmp_path / "adv"
    assert cli.main([*TINY, "--out", str(out)]) == 0
    summary = json.loads((out / "advtrain.json").read_text())
    assert summary["finished"] and summary["n_train"] == 200 and summary["holdout"] == 40
    assert 0 <= summary["clean_test_accuracy"] <= 1
    assert {"run_config.json", "run.json", "history.csv", "classifier.keras", "advtrain.json"} <= \
        {p.name for p in out.iterdir()}
    header, row = (out / "history.csv").read_text().splitlines()
    assert "holdout_pgd_accuracy" in header and row.startswith("1,")
    first = load_classifier(out / "classifier.keras").get_weights()

    # interrupted after the epoch's checkpoint, before the final save: a rerun restores, trains nothing
    (out / "classifier.keras").unlink()
    (out / "advtrain.json").unlink()
    assert cli.main([*TINY, "--out", str(out)]) == 0
    again = json.loads((out / "advtrain.json").read_text())
    resumed = load_classifier(out / "classifier.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, resumed))
    assert again["clean_test_accuracy"] == summary["clean_test_accuracy"]
    assert len((out / "history.csv").read_text().splitlines()) == 2
    assert json.loads((out / "run.json").read_text())["config"]["pgd_steps"] == 2


def test_another_config_in_the_same_folder_is_refused_unless_no_resume(tmp_path):
    out = tmp_path / "adv"
    cli.main([*TINY, "--out", str(out)])
    with pytest.raises(SystemExit, match=r"(?s)another config.*--no-resume"):
        cli.main([*TINY, "--steps", "3", "--out", str(out)])
    assert cli.main([*TINY, "--steps", "3", "--no-resume", "--out", str(out)]) == 0   # starts over
    assert json.loads((out / "run.json").read_text())["config"]["pgd_steps"] == 3


def test_holdout_larger_than_the_training_set_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="--holdout"):
        cli.main([*TINY, "--holdout", "240", "--out", str(tmp_path / "adv")])


def test_a_purifier_trained_through_a_classifier_from_init(tmp_path):
    """--purifier --joint --init: G and the fine-tuned classifier saved; robustness reads both runs."""
    from advlab.classifiers import load_classifier
    from advlab.purifiers.residual_cgan import load_purifier

    base = tmp_path / "adv"
    assert cli.main([*TINY, "--out", str(base)]) == 0
    before = load_classifier(base / "classifier.keras").get_weights()
    out = tmp_path / "pur"
    assert cli.main([*TINY, "--init", str(base), "--purifier", "narrow", "--joint", "--warmup-steps", "3",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "advtrain.json").read_text())
    assert summary["purifier"] == "narrow" and summary["config"]["train_classifier"] is True
    assert summary["arch"] == json.loads((base / "advtrain.json").read_text())["arch"]
    after = load_classifier(out / "classifier.keras").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))          # fine-tuned jointly ...
    assert all(np.array_equal(a, b) for a, b in zip(before, load_classifier(base / "classifier.keras")
                                                   .get_weights()))               # ... a copy: --init untouched
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    assert load_purifier(out)(x).shape == x.shape


def test_purifier_flags_that_do_not_go_together_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="--joint needs --purifier"):
        cli.main([*TINY, "--joint", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="not trades"):
        cli.main([*TINY, "--method", "trades", "--purifier", "narrow", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="--init"):
        cli.main([*TINY, "--init", str(tmp_path / "missing"), "--out", str(tmp_path / "c")])


def test_front_binarize_trains_behind_bit_depth_and_robustness_insists_on_it(tmp_path):
    out = tmp_path / "bin"
    assert cli.main([*TINY, "--front", "binarize", "--out", str(out)]) == 0
    summary = json.loads((out / "advtrain.json").read_text())
    assert summary["front"] == "binarize" and summary["deploy_as"] == "bit_depth"
    assert json.loads((out / "run.json").read_text())["config"]["front"] == "binarize"
    with pytest.raises(SystemExit, match="--defence bit_depth"):
        cli.main(["robustness", "--defence", "none", "--classifier-run", str(out), "--scale", "smoke",
                  "--suite", "quick", "--n", "4", "--quiet", "--out", str(tmp_path / "fig")])
    with pytest.raises(SystemExit, match="two different defences"):
        cli.main([*TINY, "--front", "binarize", "--purifier", "narrow", "--out", str(tmp_path / "x")])


def test_the_cli_fronts_are_the_trainers():
    from advlab.cli import advtrain
    from advlab.training import adversarial

    assert advtrain.FRONTS == adversarial.FRONTS and set(advtrain.FRONT_DEFENCE) == set(adversarial.FRONTS) - {"none"}
