"""The ``advlab`` command line: help and examples, every README command, the aliases, flag
parsing, the resolved run config, seeding, a quiet tour, and one tiny train -> resume -> evaluate."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import advlab
from advlab import cli
from advlab.cli import common, robustness, tour, train

ROOT = Path(__file__).resolve().parents[1]
JOBS = ("classifier", "attack", "train", "evaluate", "experiment", "compare", "robustness", "advtrain", "tour")
EXPERIMENTS = ("matrix", "transfer", "sweeps", "ablation", "grids", "all")


def run_help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0, argv
    return capsys.readouterr().out


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


# ---------------------------------------------------------------- help, version, examples


def test_help_lists_every_job_and_experiment(capsys):
    text = run_help([], capsys)
    for job in JOBS:
        assert re.search(rf"^\s+{job}\b", text, re.M), job
    text = run_help(["experiment"], capsys)
    for name in EXPERIMENTS:
        assert name in text


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"advlab {advlab.__version__}"


@pytest.mark.parametrize("job", JOBS + ("record",))
def test_each_subcommand_help_shows_an_example(job, capsys):
    text = run_help([job], capsys)
    examples = text.split("examples:\n", 1)[1]
    lines = [line.split("#")[0].strip() for line in examples.splitlines() if line.strip()]
    assert lines and all(line.startswith(f"advlab {job}") for line in lines)
    for line in lines:                    # every example parses with the real parser
        parse(*shlex.split(line)[1:])


def test_help_runs_as_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "advlab", "train", "--help"], capture_output=True,
                          text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
    assert proc.returncode == 0 and "--resume" in proc.stdout and "--no-resume" in proc.stdout


# ---------------------------------------------------------------- the README's commands


def _readme_commands() -> list[str]:
    """Every command line in README.md that starts with advlab / python -m advlab / python scripts/."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    lines += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    start = re.compile(r"^(advlab\s|python -m advlab(\s|\.classifiers\s|$)|python scripts/)")
    found = {re.split(r"\s+#", line.strip())[0].strip() for line in lines if start.match(line.strip())}
    return sorted(c for c in found if not c.startswith("python scripts/") or _is_alias(c.split()[1]))


def _is_alias(script: str) -> bool:
    """Whether ``scripts/NAME.py`` is an alias of an advlab command (other scripts are tools of
    the checkout, not the command line)."""
    path = ROOT / script
    return path.is_file() and "from advlab.cli import alias" in path.read_text()


def _as_cli_argv(command: str) -> list[str]:
    """``advlab.cli.main`` arguments for one README command (scripts and module aliases mapped)."""
    words = shlex.split(command.replace("...", ""))
    if words[0] == "advlab":
        return words[1:]
    if words[:3] == ["python", "-m", "advlab"]:
        return words[3:]
    if words[:3] == ["python", "-m", "advlab.classifiers"]:
        rest = words[3:]
        return ["classifier", *(["--dataset"] if rest and not rest[0].startswith("-") else []), *rest]
    script = ROOT / words[1]
    target = re.search(r'alias\("(\w+)"\)', script.read_text())
    assert target, f"{words[1]} is not an alias of an advlab command"
    return [target.group(1), *words[2:]]


def test_the_readme_has_cli_commands():
    commands = _readme_commands()
    assert any(c.startswith("advlab train") for c in commands)
    assert any(c.startswith("advlab experiment") for c in commands)


@pytest.mark.parametrize("command", _readme_commands())
def test_every_readme_command_parses_and_its_help_runs(command, capsys):
    argv = _as_cli_argv(command)
    if argv and "--help" not in argv and "--version" not in argv:
        parse(*argv)                     # flags, choices and positionals as written
    run_help(argv[:1], capsys)           # a bare entry point: the top-level help


# ---------------------------------------------------------------- aliases


@pytest.mark.parametrize("script, job", [("run_experiment.py", "experiment"), ("compare_defences.py", "compare"),
                                         ("record_table_i.py", "record"), ("tour.py", "tour")])
def test_scripts_are_aliases(script, job, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: advlab {job}")


def test_classifiers_module_is_an_alias(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "advlab.classifiers", "mnist", "--arch", "x", "--help"],
                          capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": ""},
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: advlab classifier")


def test_alias_translates_the_renamed_flags(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(argv) or 0)
    cli.alias("compare", ["--cgan-run", "runs/a", "--narrow", "--scale", "full"])
    cli.alias("experiment", ["sweeps", "--cgan-run=runs/b"])
    assert seen == [["compare", "--purifier-run", "runs/a", "--size", "narrow", "--scale", "full"],
                    ["experiment", "sweeps", "--purifier-run=runs/b"]]
    assert "--cgan-run is now --purifier-run" in capsys.readouterr().err


# ---------------------------------------------------------------- flags and the resolved run


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "svhn", "--out", "x"],              # unknown dataset
    ["train", "--dataset", "mnist"],                           # --out missing
    ["evaluate", "--dataset", "mnist", "--out", "x", "--scale", "huge"],
    ["experiment", "table9"],
    ["compare", "--narrow"],                                   # renamed: --size narrow
    ["robustness", "--suite", "quick"],                        # --defence missing
])
def test_bad_arguments_exit(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2


def test_unknown_attack_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown attack"):
        cli.main(["train", "--dataset", "mnist", "--attacks", "fgsm,nope", "--out", str(tmp_path)])


def test_train_subset_spec():
    assert common.subsets("cw=1000, PGD=20", ["fgsm", "pgd", "cw"]) == {"cw": 1000, "pgd": 20}
    assert common.subsets(None, ["fgsm"]) == {}
    for bad in ("cw", "cw=0", "cw=x", "bim=10"):
        with pytest.raises(SystemExit, match="--train-subset"):
            common.subsets(bad, ["fgsm", "pgd", "cw"])


def test_cpu_budget_fills_only_the_flags_left_out(monkeypatch, capsys):
    from advlab.budgets import BUDGETS

    cpu = {**BUDGETS["cpu"]["purifier"], **BUDGETS["cpu"]["table1"]["purifier"]}
    protocol = BUDGETS["cpu"]["table1"]["protocol"]

    def table1(*argv):
        return train.train_run(parse("train", "--dataset", "mnist", "--out", "x", *argv))

    run = table1("--scale", "full", "--budget", "cpu", "--epochs", "7")
    p, config = run.protocol, run.purifier
    assert (config.epochs, p.n_train, p.cw_test, run.budget, run.dataset) == (7, protocol["n_train"], 1000, "cpu",
                                                                              "mnist")
    assert p.train_subset == protocol["train_subset"]
    assert common.purifier_widths("cpu").items() <= config.to_dict().items()
    assert {k: v for k, v in cpu.items() if k != "epochs"}.items() <= config.to_dict().items()
    assert (config.perceptual, config.lambda_perc) == ("classifier", cpu["lambda_perc"])
    assert capsys.readouterr().out.count("budget: cpu (argument)") == 1      # the budget line, once
    monkeypatch.setenv("ADVLAB_BUDGET", "paper")
    run = table1("--scale", "full")
    assert (run.purifier.base_filters, run.purifier.max_filters, run.protocol.train_subset) == (64, 512, {})
    assert (run.protocol.n_train, run.purifier.perceptual, run.purifier.lambda_perc) == (None, "auto", 1.0)
    p = table1("--scale", "full", "--budget", "cpu", "--attacks", "fgsm,pgd").protocol
    assert p.attacks == ("fgsm", "pgd")
    assert "cw" not in p.train_subset and p.train_subset.get("pgd") == protocol["train_subset"]["pgd"]
    run = table1("--scale", "full", "--budget", "cpu", "--lambda-perc", "1", "--perceptual", "auto",
                 "--size", "narrow", "--train-subset", "pgd=5", "--cw-subset", "9", "--eps", "0.2")
    assert (run.purifier.perceptual, run.purifier.lambda_perc, run.purifier.base_filters) == ("auto", 1.0, 16)
    assert (run.protocol.train_subset, run.protocol.cw_test, run.protocol.eps) == ({"pgd": 5}, 9, 0.2)
    smoke = table1("--scale", "smoke", "--budget", "cpu")          # smoke scale has its own sizes
    assert smoke.budget == "smoke" and smoke.purifier.base_filters == BUDGETS["smoke"]["purifier"]["base_filters"]


def test_size_is_one_flag_for_every_job():
    from advlab.budgets import WIDTHS

    widths = common.purifier_widths("narrow")
    assert widths == {**WIDTHS["narrow"], "disc_residual_blocks": None}
    assert common.purifier_widths("cpu")["disc_residual_blocks"] == 1
    assert common.purifier_widths("paper")["max_filters"] == 512
    exp = common.resolve_run(parse("experiment", "matrix", "--scale", "smoke", "--size", "cpu"), "experiments")
    assert exp.plan.purifier_kwargs["base_filters"] == 32 and exp.plan.purifier_kwargs["batch_size"] == 16
    assert exp.purifier.base_filters == 32
    cmp_ = common.resolve_run(parse("compare", "--scale", "smoke", "--size", "narrow", "--purifier-run", "r"),
                              "comparison")
    assert cmp_.plan.purifier_kwargs["max_filters"] == 64 and cmp_.plan.cgan_run == str(Path("r").resolve())
    assert cmp_.cfg.n_test == cmp_.plan.n_eval                    # only the evaluated images are attacked


def test_seed_goes_into_the_config_and_seeds(monkeypatch, tmp_path, capsys):
    from advlab.config import CONFIG_FILE, RunConfig
    from advlab.io import seeding

    seeded = []
    monkeypatch.setattr(seeding, "set_seed", seeded.append)
    run = common.start(parse("attack", "--scale", "smoke", "--seed", "7"), "scale", folder=tmp_path)
    assert isinstance(run, RunConfig) and run.cfg.seed == 7 and seeded == [7]
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved["cfg"]["seed"] == 7 and saved["job"] == "scale" and RunConfig.load(tmp_path) == run
    assert "seed=7" in capsys.readouterr().out                   # printed at the start
    assert common.start(parse("classifier", "--scale", "smoke"), "scale").cfg.seed == 0


def test_train_config_file_repeats_the_run(tmp_path, capsys):
    from advlab.config import CONFIG_FILE

    flags = ["--dataset", "fashion_mnist", "--scale", "smoke", "--epochs", "2", "--attacks", "fgsm,cw",
             "--train-subset", "cw=8", "--seed", "3", "--lambda-l1", "50", "--eps", "0.25"]
    run = common.start(parse("train", "--out", str(tmp_path), *flags), "table1", folder=tmp_path,
                       run=train.train_run(parse("train", "--out", str(tmp_path), *flags)))
    again = train.train_run(parse("train", "--config", str(tmp_path / CONFIG_FILE), "--out", str(tmp_path / "b")))
    assert again == run and again.dataset == "fashion_mnist" and again.protocol.attacks == ("fgsm", "cw")
    assert train.train_run(parse("train", "--config", str(tmp_path), "--out", "b")) == run     # the folder works
    with pytest.raises(SystemExit, match="--seed --epochs"):
        train.train_run(parse("train", "--config", str(tmp_path), "--out", "b", "--epochs", "3", "--seed", "1"))
    with pytest.raises(SystemExit, match="cannot read a run config"):
        train.train_run(parse("train", "--config", str(tmp_path / "missing.json"), "--out", "b"))
    # evaluate reads the folder's config; the evaluation flags change it, the sizing ones must match
    evaluated, fresh = train.evaluation_run(parse("evaluate", "--out", str(tmp_path), "--cw-subset", "4",
                                                  "--n-test", "16"))
    assert not fresh and evaluated.purifier == run.purifier and evaluated.cfg.seed == 3
    assert (evaluated.protocol.cw_test, evaluated.cfg.n_test) == (4, 16)
    # the held-out attack and a slow one evaluated on the first test images only, as C&W is
    evaluated, _ = train.evaluation_run(parse("evaluate", "--out", str(tmp_path), "--attacks", "fgsm,cw,deepfool",
                                              "--test-subset", "deepfool=5"))
    p = evaluated.protocol
    assert p.test_subset == {"deepfool": 5} and p.attacks == ("fgsm", "cw", "deepfool")
    assert [p.test_images(a) for a in p.attacks] == [None, run.protocol.cw_test, 5]
    with pytest.raises(SystemExit, match="--test-subset item 'bim=5'"):
        train.evaluation_run(parse("evaluate", "--out", str(tmp_path), "--test-subset", "bim=5"))
    with pytest.raises(SystemExit, match="cw is sized by --cw-subset"):    # one flag per number
        train.evaluation_run(parse("evaluate", "--out", str(tmp_path), "--test-subset", "cw=5"))
    with pytest.raises(SystemExit, match="--dataset fashion_mnist, not mnist"):
        train.evaluation_run(parse("evaluate", "--out", str(tmp_path), "--dataset", "mnist"))


def test_record_takes_the_command_from_the_provenance(tmp_path, monkeypatch):
    from advlab.io import results

    monkeypatch.setenv("ADVLAB_FIGURES_DIR", str(tmp_path / "figures"))
    run_folder = tmp_path / "run"
    attack = {"n": 2, "attacked_accuracy": 0.0, "purified_accuracy": 0.5, "psnr_attacked": 20.0,
              "psnr_purified": 25.0, "ssim_purified": 0.9, "mae_purified": 0.01}
    evaluation = {"dataset": "mnist", "scale": "smoke", "n": 2, "clean_accuracy": 1.0, "clean_through_purifier": 1.0,
                  "psnr_clean_through_purifier": 30.0, "attacks": {"fgsm": attack}}
    results.save_json(evaluation, "evaluation", folder=run_folder)
    with pytest.raises(SystemExit, match="no evaluation.json"):
        cli.main(["record", str(tmp_path), "--name", "x"])
    assert cli.main(["record", str(run_folder), "--name", "table1_test"]) == 0
    record = json.loads((tmp_path / "figures" / "full" / "table1_test.json").read_text())
    assert record["command"] == json.loads((run_folder / "evaluation.json").read_text())["provenance"]["command"]
    assert record["evaluation"] == evaluation and "provenance" in record


def test_the_cli_defends_the_scales_classifier_whatever_n_train(monkeypatch):
    from advlab import classifiers
    from advlab.config import get_config

    seen = {}
    monkeypatch.setattr(classifiers, "get_classifier", lambda ds, cfg: seen.update(ds=ds, cfg=cfg))
    run = train.train_run(parse("train", "--out", "x", "--scale", "full", "--budget", "paper", "--n-train", "500"))
    assert run.cfg.n_train == run.protocol.n_train == 500
    train._classifier(run)
    assert seen == {"ds": "mnist", "cfg": get_config("full")}


def test_robustness_without_its_engine_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "advlab.evaluation.robustness", None)    # import fails
    with pytest.raises(SystemExit, match="evaluate_robustness"):
        robustness._engine()


def test_tensorboard_without_its_package_says_so(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    train.check_tensorboard(None)                                  # no --tensorboard: nothing to check
    with pytest.raises(SystemExit, match="pip install tensorboard"):
        train.check_tensorboard(tmp_path)
    with pytest.raises(SystemExit, match="pip install tensorboard"):   # before any attack is crafted
        cli.main(["train", "--scale", "smoke", "--out", str(tmp_path), "--tensorboard", str(tmp_path / "tb")])


# ---------------------------------------------------------------- the tour


def test_tour_picks_notebooks_by_number():
    assert [nb.name[:2] for nb in tour.notebooks(ROOT, ["00", "03"])] == ["00", "03"]
    with pytest.raises(SystemExit, match="99"):
        tour.notebooks(ROOT, ["99"])


def test_tour_prints_one_line_per_notebook_and_logs_stderr(tmp_path, monkeypatch, capsys):
    import nbformat

    from advlab.io import paths

    (tmp_path / "notebooks").mkdir()
    cells = [nbformat.v4.new_code_cell("import sys\nprint('warning: noisy', file=sys.stderr)\nprint('hi')")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "notebooks" / "00_tiny.ipynb")
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    out = tmp_path / "tour"
    assert cli.main(["tour", "--out", str(out), "--scale", "smoke"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2 and printed[0].startswith("00_tiny.ipynb") and " ok " in printed[0]
    assert "noisy" not in "\n".join(printed)
    assert "warning: noisy" in (out / tour.LOG).read_text()
    assert json.loads((out / "tour.json").read_text())[0]["status"] == "ok"
    assert (out / "00_tiny.ipynb").is_file()


# ---------------------------------------------------------------- one tiny run


@pytest.mark.slow
def test_tiny_train_resume_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    common_flags = ["--dataset", "mnist", "--attacks", "fgsm,pgd", "--scale", "smoke", "--out", str(out),
                    "--n-train", "64", "--n-test", "32", "--quiet"]
    tiny = ["--residual-blocks", "0", "--base-filters", "4", "--perceptual", "none", "--batch-size", "32",
            "--lambda-l1", "50", "--lambda-perc", "2"]
    cli.main(["train", *common_flags, *tiny, "--epochs", "1", "--no-eval", "--train-subset", "pgd=16"])
    assert not (out / "evaluation.json").exists()
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["lambda_l1"] == 50 and config["lambda_perc"] == 2          # the loss-weight flags reach the run
    assert json.loads((out / "run_config.json").read_text())["purifier"]["epochs"] == 1
    assert sorted(p.name.split("_")[2] for p in (out / "adv").iterdir()) == ["fgsm", "pgd"]
    capsys.readouterr()
    cli.main(["train", *common_flags, *tiny, "--epochs", "2", "--train-subset", "pgd=16"])  # resumes, then evaluates
    printed = capsys.readouterr().out
    assert "resuming" in printed and "paper (gray-box) vs this run" in printed
    assert "GRAY-BOX" in printed and f"--purifier-run {out}" in printed and "SMOKE SCALE" in printed
    assert "loaded fgsm set from cache" in printed                      # cached pairs reused
    result = json.loads((out / "evaluation.json").read_text())
    assert set(result["attacks"]) == {"fgsm", "pgd"} and result["n"] == 32 and result["train_epochs"] == 2
    timings = json.loads((out / "timings.json").read_text())
    assert timings["n_pairs"] == 64 + 16 and "attack_train_fgsm_s" in timings
    assert len(timings["train_sessions_s"]) == 2                        # first run + resumed run
    cli.main(["evaluate", "--out", str(out), "--quiet", "--cw-subset", "8"])   # the folder's config
    result = json.loads((out / "evaluation.json").read_text())
    assert result["scale"] == "smoke" and result["run_config"]["protocol"]["cw_test"] == 8
    assert "paired" not in result
    capsys.readouterr()
    cli.main(["evaluate", "--out", str(out), "--quiet", "--against", str(out)])    # a run against itself
    paired = json.loads((out / "evaluation.json").read_text())["paired"]
    assert paired["against"] == str(out) and set(paired["sets"]) == {"clean", "fgsm", "pgd"}
    assert all(t["only_a"] == t["only_b"] == 0 and t["mcnemar_p"] == 1.0 for t in paired["sets"].values())
    assert "image by image against" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="No purifier"):             # before any work
        cli.main(["evaluate", "--out", str(out), "--quiet", "--against", str(tmp_path / "missing")])
    assert result["provenance"]["config_digest"]
    capsys.readouterr()
    cli.main(["train", "--config", str(out / "run_config.json"), "--out", str(out), "--no-eval", "--quiet"])
    assert "already trained for 2 epochs" in capsys.readouterr().out     # the same run: nothing left to do


def test_fast_budget_is_the_cpu_budget_with_fewer_blocks_narrower():
    from advlab.config import resolve

    cpu, fast = (resolve("full", b, job="table1", dataset="mnist") for b in ("cpu", "fast"))
    changed = {k: v for k, v in fast.purifier.to_dict().items() if cpu.purifier.to_dict()[k] != v}
    assert changed == {"residual_blocks": 3, "base_filters": 16, "max_filters": 64, "disc_filters": 16,
                       "disc_residual_blocks": None}
    assert fast.protocol == cpu.protocol and fast.cfg.replace(residual_blocks=7) == cpu.cfg
    # the run it names: `--budget cpu --size narrow --residual-blocks 3`, flag for flag
    flags = train.train_run(parse("train", "--out", "x", "--scale", "full", "--budget", "cpu", "--size", "narrow",
                                  "--residual-blocks", "3"))
    assert flags.purifier == fast.purifier and flags.protocol == fast.protocol
    for job in ("experiments", "comparison"):       # the labs train the same 3-block purifiers
        run = resolve("full", "fast", job=job, dataset="mnist")
        assert run.cfg.residual_blocks == run.purifier.residual_blocks == 3
        assert (run.purifier.base_filters, run.purifier.max_filters) == (16, 64)
        cpu_plan = resolve("full", "cpu", job=job, dataset="mnist").plan
        assert run.plan.replace(purifier_kwargs=cpu_plan.purifier_kwargs) == cpu_plan


def test_clean_pairs_join_the_attacked_pairs(monkeypatch, tmp_path):
    import numpy as np

    from advlab import training
    from advlab.config import Protocol

    with pytest.raises(ValueError, match="clean_pairs"):
        Protocol(clean_pairs=-1)
    with pytest.raises(SystemExit, match="--clean-pairs"):
        train.train_run(parse("train", "--out", "x", "--scale", "smoke", "--clean-pairs", "-3"))
    assert train.train_run(parse("train", "--out", "x", "--scale", "smoke")).protocol.clean_pairs == 0

    seen = {}

    class Stop(Exception):
        pass

    def fake_train(x_adv, x_clean, *args, **kwargs):
        seen.update(x_adv=x_adv, x_clean=x_clean)
        raise Stop

    monkeypatch.setattr(train, "_classifier", lambda run: None)
    monkeypatch.setattr(train, "adversarial", lambda out, split, name, model, x, y, run, progress: 1.0 - x)
    monkeypatch.setattr(training, "train_purifier", fake_train)
    args = parse("train", "--out", str(tmp_path), "--scale", "smoke", "--attacks", "fgsm,pgd", "--n-train", "40",
                 "--clean-pairs", "10", "--quiet")
    with pytest.raises(Stop):
        train.cmd_train(args)
    x_adv, x_clean = seen["x_adv"], seen["x_clean"]
    assert len(x_adv) == len(x_clean) == 40 + 40 + 10
    np.testing.assert_array_equal(x_adv[80:], x_clean[80:])           # clean -> clean
    np.testing.assert_array_equal(x_clean[80:], x_clean[:10])         # the first 10 training images
    np.testing.assert_allclose(x_adv[:80], 1.0 - x_clean[:80])        # the attacked pairs, unchanged
    assert json.loads((tmp_path / "run_config.json").read_text())["protocol"]["clean_pairs"] == 10


def test_ablation_blocks_and_seeds_flags():
    run = common.resolve_run(parse("experiment", "ablation", "--scale", "smoke", "--blocks", "0, 3",
                                   "--seeds", "0,1,2"), "experiments")
    assert (run.plan.ablation_blocks, run.plan.ablation_seeds) == ((0, 3), (0, 1, 2))
    assert common.resolve_run(parse("experiment", "ablation", "--scale", "smoke"), "experiments").plan.ablation_seeds is None
    for flag, bad in (("--seeds", "1,1"), ("--blocks", "-1,2"), ("--blocks", "a")):
        with pytest.raises(SystemExit, match=flag):
            common.resolve_run(parse("experiment", "ablation", "--scale", "smoke", f"{flag}={bad}"), "experiments")


def test_robustness_table_joins_saved_reports(tmp_path, capsys):
    import csv

    recs = [ROOT / "figures" / "full" / f"robustness_mnist_{n}.json" for n in ("adv_pgd", "bit_depth_adv_pgd")]
    beside = ROOT / "figures" / "full" / "robustness_mnist_adv_pgd_run_config.json"   # what a glob also takes
    assert cli.main(["robustness-table", str(recs[0]), str(beside), str(recs[1]), "--out", str(tmp_path), "--name", "t"]) == 0
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["defence"] for r in rows] == ["robustness_mnist_adv_pgd", "robustness_mnist_bit_depth_adv_pgd"]
    for row, path in zip(rows, recs):
        rec = json.loads(path.read_text())
        assert float(row["worst case %"]) == pytest.approx(100 * rec["worst_case"]["accuracy"], abs=0.01)
        assert float(row["attack minutes"]) == pytest.approx(sum(s["seconds"] for s in rec["stages"]) / 60, abs=0.01)
        for s in rec["stages"]:
            assert float(row[f"{s['stage']} %"]) == pytest.approx(100 * s["accuracy"], abs=0.01)
    assert rows[0]["quantized-pgd %"] == "" and rows[1]["quantized-pgd %"] != ""   # a stage one did not get
    assert rows[1]["flags"] == "gradient_masking" and "provenance" in json.loads((tmp_path / "t.json").read_text())
    assert "worst  90.3 %" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(SystemExit, match="not a readable"):
        cli.main(["robustness-table", str(tmp_path / "bad.json"), "--out", str(tmp_path)])


def test_robustness_table_puts_the_comparison_beside(tmp_path, capsys):
    import csv

    cmp_path = ROOT / "figures" / "full" / "10_defences_mnist_full.json"
    comparison = json.loads(cmp_path.read_text())
    scale = 1 if "percent" in comparison["meta"]["accuracy"] else 100
    gray = {r["defence"]: scale * r["gray-box:pgd"] for r in comparison["rows"]}
    recs = [ROOT / "figures" / "full" / f"robustness_mnist_{n}.json" for n in ("median_plain", "adv_pgd")]
    assert cli.main(["robustness-table", *map(str, recs), "--comparison", str(cmp_path),
                     "--out", str(tmp_path), "--name", "t"]) == 0
    median, adv = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert float(median["comparison gray-box:pgd %"]) == pytest.approx(gray["median"], abs=0.01)
    assert median["comparison e2e:pgd %"] == ""                 # median is not differentiable
    assert adv["comparison gray-box:pgd %"] == ""                # another classifier: not the comparison's row
    assert float(median["worst case %"]) == 0.0
    assert f"gray-box PGD {gray['median']:5.1f} %" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(SystemExit, match="not a readable `advlab compare`"):
        cli.main(["robustness-table", str(recs[0]), "--comparison", str(tmp_path / "bad.json")])
