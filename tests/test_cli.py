"""The command line: argument errors, help, and one tiny train -> resume -> evaluate run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from advlab import cli

ROOT = Path(__file__).resolve().parents[1]


def test_help_runs_as_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "advlab", "train", "--help"], capture_output=True,
                          text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
    assert proc.returncode == 0 and "--resume" not in proc.stdout and "--no-resume" in proc.stdout


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "svhn", "--out", "x"],              # unknown dataset
    ["train", "--dataset", "mnist"],                           # --out missing
    ["evaluate", "--dataset", "mnist", "--out", "x", "--scale", "huge"],
])
def test_bad_arguments_exit(argv):
    with pytest.raises(SystemExit):
        cli.main(argv)


def test_unknown_attack_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown attack"):
        cli.main(["train", "--dataset", "mnist", "--attacks", "fgsm,nope", "--out", str(tmp_path)])


def test_train_subset_spec():
    assert cli._subsets("cw=1000, PGD=20", ["fgsm", "pgd", "cw"]) == {"cw": 1000, "pgd": 20}
    assert cli._subsets(None, ["fgsm"]) == {}
    for bad in ("cw", "cw=0", "cw=x", "bim=10"):
        with pytest.raises(SystemExit, match="--train-subset"):
            cli._subsets(bad, ["fgsm", "pgd", "cw"])


def test_cpu_budget_fills_only_the_flags_left_out(monkeypatch, capsys):
    from advlab.purifiers.residual_cgan import TABLE_I_CPU

    args = cli.build_parser().parse_args(["train", "--dataset", "mnist", "--scale", "full", "--out", "x",
                                          "--budget", "cpu", "--epochs", "7"])
    cli._apply_budget(args)
    assert (args.epochs, args.size, args.n_train, args.cw_subset) == (7, "cpu", TABLE_I_CPU["n_train"], 1000)
    assert args.train_subset == ",".join(f"{a}={n}" for a, n in TABLE_I_CPU["train_subset"].items())
    assert args.learning_rate == TABLE_I_CPU["learning_rate"] and args.lr_decay_start == TABLE_I_CPU["lr_decay_start"]
    assert (args.perceptual, args.lambda_perc) == ("classifier", TABLE_I_CPU["lambda_perc"])
    assert "budget: cpu (argument)" in capsys.readouterr().out
    monkeypatch.setenv("ADVLAB_BUDGET", "paper")
    args = cli.build_parser().parse_args(["train", "--dataset", "mnist", "--scale", "full", "--out", "x"])
    cli._apply_budget(args)
    assert args.size is None and args.n_train is None and args.epochs is None
    assert args.perceptual is None and args.lambda_perc is None   # the paper's: auto backbone, weight 1
    args = cli.build_parser().parse_args(["train", "--dataset", "mnist", "--scale", "smoke", "--out", "x",
                                          "--budget", "cpu"])
    cli._apply_budget(args)                                  # smoke scale has its own sizes
    assert args.size is None and args.n_train is None
    args = cli.build_parser().parse_args(["train", "--dataset", "mnist", "--scale", "full", "--out", "x",
                                          "--budget", "cpu", "--attacks", "fgsm,pgd"])
    cli._apply_budget(args)
    expected = ",".join(f"{a}={n}" for a, n in TABLE_I_CPU["train_subset"].items() if a in ("fgsm", "pgd"))
    assert args.train_subset == (expected or None)  # no C&W, no C&W subset
    assert args.size == "cpu"
    args = cli.build_parser().parse_args(["train", "--dataset", "mnist", "--scale", "full", "--out", "x",
                                          "--budget", "cpu", "--lambda-perc", "1", "--perceptual", "auto"])
    cli._apply_budget(args)
    assert (args.perceptual, args.lambda_perc) == ("auto", 1.0)  # given flags win over the budget


def test_the_cli_defends_the_scales_classifier_whatever_n_train(monkeypatch):
    from advlab import classifiers
    from advlab.config import get_config

    seen = {}
    monkeypatch.setattr(classifiers, "get_classifier", lambda ds, cfg: seen.update(ds=ds, cfg=cfg))
    args = cli.build_parser().parse_args(["train", "--dataset", "mnist", "--scale", "full", "--out", "x",
                                          "--n-train", "500"])
    cli._classifier(args)
    assert seen == {"ds": "mnist", "cfg": get_config("full")}


@pytest.mark.slow
def test_tiny_train_resume_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--dataset", "mnist", "--attacks", "fgsm,pgd", "--scale", "smoke", "--out", str(out),
              "--n-train", "64", "--n-test", "32", "--quiet"]
    tiny = ["--residual-blocks", "0", "--base-filters", "4", "--perceptual", "none", "--batch-size", "32",
            "--lambda-l1", "50", "--lambda-perc", "2"]
    cli.main(["train", *common, *tiny, "--epochs", "1", "--no-eval", "--train-subset", "pgd=16"])
    assert not (out / "evaluation.json").exists()
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["lambda_l1"] == 50 and config["lambda_perc"] == 2          # the loss-weight flags reach the run
    assert sorted(p.name.split("_")[2] for p in (out / "adv").iterdir()) == ["fgsm", "pgd"]
    capsys.readouterr()
    cli.main(["train", *common, *tiny, "--epochs", "2", "--train-subset", "pgd=16"])                 # resumes, then evaluates
    printed = capsys.readouterr().out
    assert "resuming" in printed and "paper vs this run" in printed
    assert "loaded fgsm set from cache" in printed                      # cached pairs reused
    result = json.loads((out / "evaluation.json").read_text())
    assert set(result["attacks"]) == {"fgsm", "pgd"} and result["n"] == 32 and result["train_epochs"] == 2
    timings = json.loads((out / "timings.json").read_text())
    assert timings["n_pairs"] == 64 + 16 and "attack_train_fgsm_s" in timings
    assert len(timings["train_sessions_s"]) == 2                        # first run + resumed run
    cli.main(["evaluate", *common, "--cw-subset", "8"])
    assert json.loads((out / "evaluation.json").read_text())["scale"] == "smoke"
