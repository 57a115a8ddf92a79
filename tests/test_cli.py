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
    start = re.compile(r"^(advlab\s|python -m advlab\b|python scripts/)")
    return sorted({re.split(r"\s+#", line.strip())[0].strip() for line in lines if start.match(line.strip())})


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
    from advlab.purifiers.residual_cgan import SIZES, TABLE_I_CPU

    def table1(*argv):
        return common.resolve_run(parse("train", "--dataset", "mnist", "--out", "x", *argv), "table1")

    run = table1("--scale", "full", "--budget", "cpu", "--epochs", "7")
    p = run.plan
    assert (p.config.epochs, p.n_train, p.cw_test, run.budget) == (7, TABLE_I_CPU["n_train"], 1000, "cpu")
    assert p.train_subset == TABLE_I_CPU["train_subset"]
    assert SIZES["cpu"].items() <= p.config.to_dict().items()
    assert (p.config.learning_rate, p.config.lr_decay_start) == (TABLE_I_CPU["learning_rate"],
                                                                 TABLE_I_CPU["lr_decay_start"])
    assert (p.config.perceptual, p.config.lambda_perc) == ("classifier", TABLE_I_CPU["lambda_perc"])
    assert "budget: cpu (argument)" in capsys.readouterr().out
    monkeypatch.setenv("ADVLAB_BUDGET", "paper")
    p = table1("--scale", "full").plan
    assert (p.config.base_filters, p.config.max_filters, p.train_subset, p.n_train) == (64, 512, {}, None)
    assert (p.config.perceptual, p.config.lambda_perc) == ("auto", 1.0)   # the paper's
    p = table1("--scale", "full", "--budget", "cpu", "--attacks", "fgsm,pgd").plan
    assert "cw" not in p.train_subset and p.train_subset.get("pgd") == TABLE_I_CPU["train_subset"]["pgd"]
    p = table1("--scale", "full", "--budget", "cpu", "--lambda-perc", "1", "--perceptual", "auto",
               "--size", "narrow", "--train-subset", "pgd=5", "--cw-subset", "9").plan
    assert (p.config.perceptual, p.config.lambda_perc, p.config.base_filters) == ("auto", 1.0, 16)
    assert (p.train_subset, p.cw_test) == ({"pgd": 5}, 9)          # given flags win over the budget
    smoke = table1("--scale", "smoke", "--budget", "cpu")          # smoke scale has its own sizes
    assert smoke.budget is None and smoke.plan.config.base_filters == 16


def test_size_is_one_flag_for_every_job():
    widths = common.purifier_widths("narrow")
    assert (widths["base_filters"], widths["max_filters"], widths["disc_residual_blocks"]) == (16, 64, None)
    assert common.purifier_widths("cpu")["disc_residual_blocks"] == 1
    exp = common.resolve_run(parse("experiment", "matrix", "--scale", "smoke", "--size", "cpu"), "experiments")
    assert exp.plan.purifier_kwargs["base_filters"] == 32 and exp.plan.purifier_kwargs["batch_size"] == 16
    cmp_ = common.resolve_run(parse("compare", "--scale", "smoke", "--size", "narrow", "--purifier-run", "r"),
                              "comparison")
    assert cmp_.plan.purifier_kwargs["max_filters"] == 64 and cmp_.plan.cgan_run == str(Path("r").resolve())


def test_seed_goes_into_the_config_and_seeds(monkeypatch, tmp_path, capsys):
    from advlab.io import seeding

    seeded = []
    monkeypatch.setattr(seeding, "set_seed", seeded.append)
    args = parse("attack", "--scale", "smoke", "--seed", "7")
    args.command_line = "advlab attack --seed 7"
    run = common.start(args, "plain", folder=tmp_path)
    assert run.cfg.seed == 7 and seeded == [7]
    saved = json.loads((tmp_path / common.RUN_CONFIG).read_text())
    assert saved["cfg"]["seed"] == 7 and saved["command"] == "advlab attack --seed 7" and saved["job"] == "plain"
    assert "seed=7" in capsys.readouterr().out                   # printed at the start
    assert common.start(parse("classifier", "--scale", "smoke"), "classifier").cfg.seed == 0


def test_the_cli_defends_the_scales_classifier_whatever_n_train(monkeypatch):
    from advlab import classifiers
    from advlab.config import get_config

    seen = {}
    monkeypatch.setattr(classifiers, "get_classifier", lambda ds, cfg: seen.update(ds=ds, cfg=cfg))
    train._classifier(parse("train", "--dataset", "mnist", "--out", "x"), get_config("full", n_train=500))
    assert seen == {"ds": "mnist", "cfg": get_config("full")}


def test_robustness_without_its_engine_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "advlab.evaluation.robustness", None)    # import fails
    with pytest.raises(SystemExit, match="evaluate_robustness"):
        robustness._engine()


def test_tensorboard_needs_the_callbacks_argument(tmp_path):
    def old_train(x_adv, x_clean, cfg=None): ...

    def new_train(x_adv, x_clean, cfg=None, *, callbacks=None): ...

    assert train._callbacks(old_train, None) == {}
    with pytest.raises(SystemExit, match="callbacks"):
        train._callbacks(old_train, tmp_path)
    (callback,) = train._callbacks(new_train, tmp_path)["callbacks"]
    assert type(callback).__name__ == "TensorBoard"


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
    assert json.loads((out / common.RUN_CONFIG).read_text())["plan"]["config"]["epochs"] == 1
    assert sorted(p.name.split("_")[2] for p in (out / "adv").iterdir()) == ["fgsm", "pgd"]
    capsys.readouterr()
    cli.main(["train", *common_flags, *tiny, "--epochs", "2", "--train-subset", "pgd=16"])  # resumes, then evaluates
    printed = capsys.readouterr().out
    assert "resuming" in printed and "paper vs this run" in printed
    assert "loaded fgsm set from cache" in printed                      # cached pairs reused
    result = json.loads((out / "evaluation.json").read_text())
    assert set(result["attacks"]) == {"fgsm", "pgd"} and result["n"] == 32 and result["train_epochs"] == 2
    timings = json.loads((out / "timings.json").read_text())
    assert timings["n_pairs"] == 64 + 16 and "attack_train_fgsm_s" in timings
    assert len(timings["train_sessions_s"]) == 2                        # first run + resumed run
    cli.main(["evaluate", *common_flags, "--cw-subset", "8"])
    assert json.loads((out / "evaluation.json").read_text())["scale"] == "smoke"
