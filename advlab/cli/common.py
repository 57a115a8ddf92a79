"""What every ``advlab`` subcommand shares: the flags (each defined once, here), the one place
flags become the run's :class:`advlab.config.RunConfig` (:func:`resolve_run`, printed, saved and
seeded by :func:`start`), and small parsers.

Importing this module is cheap (argparse only); the lab's modules load when a command runs.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
from pathlib import Path

from advlab.budgets import BUDGETS  # plain data, no TensorFlow

DATASETS = ("mnist", "fashion_mnist", "cifar10", "imagenet")
WIDTH_FIELDS = ("base_filters", "max_filters", "disc_filters", "disc_residual_blocks")

# Each shared flag, defined once: (flag names, argparse keywords). A subcommand takes the ones
# it uses with add_shared() and may change a keyword (its own default, choices or help).
SHARED = {
    "dataset": (("--dataset",), dict(default="mnist", choices=DATASETS, help="default: %(default)s")),
    "scale": (("--scale",), dict(default=None, choices=("smoke", "full"),
                                 help="smoke (embedded sample, tiny models) or full (the papers' sizes); "
                                      "default: $ADVLAB_SCALE, else smoke")),
    "budget": (("--budget",), dict(default=None, choices=tuple(b for b in BUDGETS if b != "smoke"),
                                   help="full scale only: the papers' network widths and data sizes (paper, "
                                        "for a GPU) or the same protocol sized for a 2-core CPU (cpu; fast: "
                                        "3 residual blocks, not 7, at the narrow width); "
                                        "default: $ADVLAB_BUDGET, else paper with a GPU, cpu without")),
    "out": (("--out",), dict(type=Path, default=None, help="output folder")),
    "seed": (("--seed",), dict(type=int, default=None,
                               help="seeds Python, NumPy, TensorFlow and Keras and goes into the config "
                                    "(and so into cache keys); default: the config's (0)")),
    "resume": (("--resume",), dict(action=argparse.BooleanOptionalAction, default=True,
                                   help="continue from the checkpoints in --out (default), or start over")),
    "estimate": (("--estimate",), dict(action="store_true",
                                       help="time short probes and print the expected run time; no run")),
    "data_dir": (("--data-dir",), dict(type=Path, default=None,
                                       help="folder with the dataset files (sets $ADVLAB_DATA_DIR for this run)")),
    "quiet": (("--quiet",), dict(action="store_true", help="no progress bars")),
    "attacks": (("--attacks",), dict(default="fgsm,pgd,cw",
                                     help="comma-separated attack names (default: %(default)s)")),
    "eps": (("--eps",), dict(type=float, default=None,
                             help="L-inf budget (default: the attack preset's, 0.3 for MNIST-like data, 16/255 else)")),
    "size": (("--size",), dict(default=None, choices=("paper", "cpu", "narrow"),
                               help="purifier width: paper (64->512 filters), cpu (32->128, D with 1 residual "
                                    "block), narrow (16->64, ~10x cheaper than paper); default: the budget's "
                                    "(smoke scale: its own small networks)")),
    "purifier_run": (("--purifier-run",), dict(type=Path, default=None, metavar="DIR",
                                               help="defend with the generator of `advlab train --out DIR` "
                                                    "instead of training one")),
    "n_train": (("--n-train",), dict(type=int, default=None, help="clean training images per attack")),
    "n_test": (("--n-test",), dict(type=int, default=None, help="test images attacked and evaluated")),
    "epochs": (("--epochs",), dict(type=int, default=None, help="purifier training epochs")),
    "perceptual": (("--perceptual",), dict(default=None,
                                           help="auto | vgg19 | classifier | none | vgg19-random | PATH to VGG19 "
                                                "weights (auto = VGG19 if its weights load, else the classifier)")),
}


def add_shared(parser: argparse.ArgumentParser, *names: str, **changes: dict) -> None:
    """Add the shared flags ``names`` to ``parser``; ``changes[name]`` overrides keywords."""
    for name in names:
        flags, kwargs = SHARED[name]
        parser.add_argument(*flags, **{**kwargs, **changes.get(name, {})})


def add_command(sub, name: str, help: str, examples: list[str], description: str | None = None):
    """A subcommand whose ``--help`` ends with worked examples."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return sub.add_parser(name, help=help, description=description or help, epilog=epilog, allow_abbrev=False,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def names(spec: str | None) -> tuple[str, ...]:
    """``"a, B,,c"`` -> ``("a", "b", "c")``."""
    return tuple(s.strip().lower() for s in (spec or "").split(",") if s.strip())


def attack_names(spec: str) -> list[str]:
    from advlab.attacks import ATTACKS, EXTRAS

    found = list(names(spec))
    unknown = [a for a in found if a not in ATTACKS + EXTRAS]
    if not found or unknown:
        raise SystemExit(f"error: unknown attack(s) {unknown or spec!r}; choose from {ATTACKS + EXTRAS}")
    return found


def subsets(spec: str | None, attacks: list[str], flag: str = "--train-subset",
            elsewhere: dict | None = None) -> dict[str, int]:
    """``"cw=1000,pgd=20000"`` -> ``{"cw": 1000, "pgd": 20000}`` (attacks must be among ``attacks``;
    ``elsewhere`` names the attacks another flag sizes, ``{attack: flag}``, refused here)."""
    out = {}
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        name, _, n = item.partition("=")
        name = name.strip().lower()
        if name in (elsewhere or {}):
            raise SystemExit(f"error: {flag} item {item!r}: {name} is sized by {elsewhere[name]}")
        if name not in attacks or not n.strip().isdigit() or int(n) < 1:
            raise SystemExit(f"error: {flag} item {item!r} must be ATTACK=N with ATTACK in {attacks} "
                             f"and N a positive integer")
        out[name] = int(n)
    return out


def evaluation_subsets(spec: str, attacks) -> dict[str, int]:
    """``--test-subset``: per-attack test images; C&W's are ``--cw-subset`` (the paper's protocol)."""
    return subsets(spec, list(attacks), "--test-subset", elsewhere={"cw": "--cw-subset"})


def purifier_widths(size: str) -> dict:
    """Every width field of the residual cGAN / pix2pix for ``--size``: the paper's (the
    :class:`~advlab.config.CGANConfig` defaults), the cpu budget's or ``budgets.WIDTHS[size]``,
    each filling all of ``WIDTH_FIELDS`` so a size never inherits another size's widths."""
    from advlab.budgets import BUDGETS, WIDTHS
    from advlab.config import CGANConfig

    named = {"paper": {}, "cpu": BUDGETS["cpu"]["purifier"], **WIDTHS}
    if size not in named:
        raise ValueError(f"Unknown purifier size {size!r}; choose one of {sorted(named)}.")
    paper = CGANConfig()
    return {k: named[size].get(k, getattr(paper, k)) for k in WIDTH_FIELDS}


def print_rows(rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(width[c]) for c in cols))


@contextlib.contextmanager
def environment(**variables):
    """Set environment variables (``None`` values are skipped) for one run, then restore them."""
    old = {k: os.environ.get(k) for k in variables}
    try:
        for key, value in variables.items():
            if value is not None:
                os.environ[key] = str(value)
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------- the resolved run


def resolve_run(args, job: str):
    """The one place the CLI turns flags into the run's :class:`~advlab.config.RunConfig`:
    :func:`advlab.config.resolve` for ``job`` with every flag given as an override (flags a
    command does not have, or left out, leave the budget's values). The full-scale budget line
    is printed here, once."""
    from advlab.config import JOBS, get_config, resolve, resolve_budget

    if job not in JOBS:
        raise ValueError(f"Unknown job {job!r}; choose one of {JOBS}.")
    scale = get_config(getattr(args, "scale", None)).scale
    budget = resolve_budget(getattr(args, "budget", None)) if scale == "full" else None
    overrides = {**_lab_overrides(args, job), **_purifier_overrides(args, job),
                 **(_table1(args) if job == "table1" else _comparison(args) if job == "comparison" else
                    _ablation(args) if job == "experiments" else {})}
    run = resolve(scale, budget, job=job, dataset=getattr(args, "dataset", None), **overrides)
    if job == "table1" and "train_subset" not in overrides:
        # the budget's subsets of the attacks this run has (a subset of an attack left out is noise)
        keep = {a: n for a, n in run.protocol.train_subset.items() if a in run.protocol.attacks}
        run = run.replace(protocol=run.protocol.replace(train_subset=keep))
    if job == "comparison" and run.plan.n_eval is not None and (run.cfg.n_test or math.inf) > run.plan.n_eval:
        run = run.replace(cfg=run.cfg.replace(n_test=run.plan.n_eval))   # attack only the evaluated images
    return run


def given(args, names: dict) -> dict:
    """``{override: value}`` for each ``{flag dest: override}`` that ``args`` has and was given."""
    return {key: getattr(args, dest) for dest, key in names.items() if getattr(args, dest, None) is not None}


def _lab_overrides(args, job: str) -> dict:
    both = ("cfg__n_train", "protocol__n_train") if job == "table1" else ("n_train",)
    found = given(args, {"seed": "seed", "n_test": "n_test", "classifier_epochs": "classifier_epochs"})
    found.update({key: args.n_train for key in both if getattr(args, "n_train", None) is not None})
    return found


def _purifier_overrides(args, job: str) -> dict:
    """``--size`` widths, then the single purifier flags (which win); none for a plain job."""
    if job == "scale":
        return {}
    found = purifier_widths(args.size) if getattr(args, "size", None) else {}
    found.update(given(args, {"epochs": "epochs", "perceptual": "purifier__perceptual",
                               "base_filters": "base_filters", "max_filters": "max_filters",
                               "disc_blocks": "disc_residual_blocks", "learning_rate": "learning_rate",
                               "lr_decay_start": "lr_decay_start", "lambda_l1": "lambda_l1",
                               "lambda_perc": "lambda_perc", "schedule": "schedule",
                               "mixed_precision": "mixed_precision"}))
    for dest in ("batch_size", "residual_blocks"):       # the lab and its purifier: one value for both
        if getattr(args, dest, None) is not None:
            found.update({f"cfg__{dest}": getattr(args, dest), f"purifier__{dest}": getattr(args, dest)})
    return found


def _table1(args) -> dict:
    from advlab.config import Protocol

    found = given(args, {"cw_subset": "cw_test", "eps": "eps", "clean_pairs": "clean_pairs"})
    if found.get("clean_pairs", 0) < 0:
        raise SystemExit(f"error: --clean-pairs must be >= 0, got {found['clean_pairs']}")
    if getattr(args, "attacks", None):
        found["attacks"] = tuple(attack_names(args.attacks))
    if getattr(args, "train_subset", None) is not None:
        found["train_subset"] = subsets(args.train_subset, list(found.get("attacks", Protocol().attacks)))
    if getattr(args, "test_subset", None) is not None:
        found["test_subset"] = evaluation_subsets(args.test_subset, found.get("attacks", Protocol().attacks))
    return found


def integers(spec: str, flag: str, low: int | None = None) -> tuple[int, ...]:
    """``"0, 1,3"`` -> ``(0, 1, 3)``: distinct integers (each >= ``low``), else a clear error."""
    try:
        found = tuple(int(s) for s in spec.split(",") if s.strip())
    except ValueError:
        found = ()
    if not found or len(set(found)) != len(found) or (low is not None and min(found) < low):
        raise SystemExit(f"error: {flag} must be distinct comma-separated integers"
                         f"{f' >= {low}' if low is not None else ''}, got {spec!r}")
    return found


def _ablation(args) -> dict:
    found = {}
    if getattr(args, "blocks", None):
        found["ablation_blocks"] = integers(args.blocks, "--blocks", low=0)
    if getattr(args, "seeds", None):
        found["ablation_seeds"] = integers(args.seeds, "--seeds")
    return found


def _comparison(args) -> dict:
    from advlab.config import DEFENCES

    found = given(args, {"n_eval": "n_eval", "n_adaptive": "n_adaptive"})
    if getattr(args, "purifier_run", None):
        found["cgan_run"] = str(Path(args.purifier_run).resolve())
    if getattr(args, "defences", None):
        chosen = names(args.defences)
        unknown = [d for d in chosen if d not in DEFENCES]
        if unknown:
            raise SystemExit(f"error: unknown defence(s) {unknown}; choose from {DEFENCES}")
        found["defences"] = chosen
    if getattr(args, "adaptive_attacks", None):
        found["adaptive_attacks"] = tuple(attack_names(args.adaptive_attacks))
    return found


def start(args, job: str, folder=None, run=None):
    """Resolve the run (or take ``run``), print it, save it as ``folder/run_config.json`` (if a
    folder) and seed; returns the :class:`~advlab.config.RunConfig`."""
    from advlab.io.seeding import set_seed

    run = run or resolve_run(args, job)
    print(run)
    if folder is not None:
        print(f"[advlab] run config saved to {run.save(folder)}")
    set_seed(run.cfg.seed)
    return run
