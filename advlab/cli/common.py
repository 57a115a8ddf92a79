"""What every ``advlab`` subcommand shares: the flags (each defined once, here), the one place
a run's configuration is resolved (:func:`resolve_run`), seeding, and small parsers.

Importing this module is cheap (argparse only); the lab's modules load when a command runs.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import sys
import textwrap
from pathlib import Path

DATASETS = ("mnist", "fashion_mnist", "cifar10", "imagenet")
JOBS = ("classifier", "table1", "experiments", "comparison", "plain")
RUN_CONFIG = "run_config.json"

# Each shared flag, defined once: (flag names, argparse keywords). A subcommand takes the ones
# it uses with add_shared() and may change a keyword (its own default, choices or help).
SHARED = {
    "dataset": (("--dataset",), dict(default="mnist", choices=DATASETS, help="default: %(default)s")),
    "scale": (("--scale",), dict(default=None, choices=("smoke", "full"),
                                 help="smoke (embedded sample, tiny models) or full (the papers' sizes); "
                                      "default: $ADVLAB_SCALE, else smoke")),
    "budget": (("--budget",), dict(default=None, choices=("paper", "cpu"),
                                   help="full scale only: the papers' network widths and data sizes (paper, "
                                        "for a GPU) or the same protocol sized for a 2-core CPU (cpu); "
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


def subsets(spec: str | None, attacks: list[str]) -> dict[str, int]:
    """``"cw=1000,pgd=20000"`` -> ``{"cw": 1000, "pgd": 20000}`` (attacks must be among ``attacks``)."""
    out = {}
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        name, _, n = item.partition("=")
        name = name.strip().lower()
        if name not in attacks or not n.strip().isdigit() or int(n) < 1:
            raise SystemExit(f"error: --train-subset item {item!r} must be ATTACK=N with ATTACK in {attacks} "
                             f"and N a positive integer")
        out[name] = int(n)
    return out


def purifier_widths(size: str) -> dict:
    """Every width field of the residual cGAN / pix2pix for ``--size``: the paper's defaults
    replaced by ``residual_cgan.SIZES[size]`` or ``pipeline.NARROW``, so a size never inherits
    another size's widths."""
    from advlab.experiments.pipeline import NARROW
    from advlab.purifiers.residual_cgan import SIZES, CGANConfig

    keys = ("base_filters", "max_filters", "disc_filters", "disc_residual_blocks")
    paper = {k: getattr(CGANConfig(), k) for k in keys}
    return {**paper, **(NARROW if size == "narrow" else SIZES[size])}


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


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything one command runs with: the lab config, the job's plan and where they came from."""

    job: str
    cfg: object              # advlab.config.LabConfig
    plan: object = None      # TableIProtocol | experiments Plan | ComparisonPlan | None
    budget: str | None = None
    command: str = ""

    def to_dict(self) -> dict:
        plan = dataclasses.asdict(self.plan) if dataclasses.is_dataclass(self.plan) else self.plan
        return {"job": self.job, "command": self.command, "budget": self.budget,
                "cfg": dataclasses.asdict(self.cfg), "plan": plan}

    def describe(self) -> str:
        """The config as a few wrapped ``key=value`` lines (the full record is ``run_config.json``)."""
        head = f"[advlab] {self.job} run" + (f", budget {self.budget}" if self.budget else "")
        lines = [head + (f": {self.command}" if self.command else "")]
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                body = ", ".join(f"{k}={v!r}" for k, v in values.items())
                lines += textwrap.wrap(f"{section}: {body}", 110, initial_indent="  ", subsequent_indent="      ")
        return "\n".join(lines)

    def save(self, folder) -> Path:
        """Write ``run_config.json`` into ``folder`` (created)."""
        from advlab.io import results

        return results.save_json(self.to_dict(), RUN_CONFIG, folder=folder)


def command_line(argv: list[str] | None) -> str:
    return shlex.join(["advlab", *(sys.argv[1:] if argv is None else argv)])


def resolve_run(args, job: str) -> Run:
    """The one place the CLI turns flags into a configuration (one function per ``job``).

    ``args.seed`` (if given) goes into the config; the flags a job does not know are ignored.
    """
    if job not in JOBS:
        raise ValueError(f"Unknown job {job!r}; choose one of {JOBS}.")
    from advlab.config import get_config, resolve_budget

    lab = {k: v for k, v in {"seed": args.seed, "n_train": getattr(args, "n_train", None),
                             "n_test": getattr(args, "n_test", None)}.items() if v is not None}
    scale = get_config(args.scale).scale
    budget = resolve_budget(getattr(args, "budget", None)) if scale == "full" else None
    resolve = {"classifier": _classifier, "table1": _table1, "experiments": _experiments,
               "comparison": _comparison, "plain": _plain}[job]
    cfg, plan = resolve(args, scale, budget, lab)
    return Run(job, cfg, plan, budget, getattr(args, "command_line", ""))


def _classifier(args, scale, budget, lab):
    from advlab.config import get_config

    epochs = {"classifier_epochs": args.epochs} if getattr(args, "epochs", None) else {}
    return get_config(scale, **{k: v for k, v in lab.items() if k == "seed"}, **epochs), None


def _plain(args, scale, budget, lab):
    from advlab.config import get_config

    return get_config(scale, **lab), None


def _table1(args, scale, budget, lab):
    """The Table I protocol (:func:`residual_cgan.table_i_protocol`), then each flag given."""
    from advlab.config import get_config
    from advlab.purifiers.residual_cgan import table_i_protocol

    extra = {k: v for k, v in {"batch_size": args.batch_size, "purifier_epochs": getattr(args, "epochs", None),
                               "residual_blocks": getattr(args, "residual_blocks", None)}.items() if v is not None}
    cfg = get_config(scale, **lab, **extra)
    protocol = table_i_protocol(cfg, budget)
    config = protocol.config
    if getattr(args, "size", None):
        config = config.replace(**purifier_widths(args.size))
    fields = ("epochs", "batch_size", "residual_blocks", "base_filters", "max_filters", "disc_blocks",
              "learning_rate", "lr_decay_start", "lambda_l1", "lambda_perc", "perceptual", "schedule",
              "mixed_precision")
    renamed = {"disc_blocks": "disc_residual_blocks"}
    config = config.replace(**{renamed.get(f, f): getattr(args, f) for f in fields
                               if getattr(args, f, None) is not None})
    attacks = attack_names(args.attacks)
    train_subset = {a: n for a, n in protocol.train_subset.items() if a in attacks}
    if getattr(args, "train_subset", None) is not None:
        train_subset = subsets(args.train_subset, attacks)
    protocol = dataclasses.replace(
        protocol, config=config, train_subset=train_subset,
        n_train=lab.get("n_train", protocol.n_train),
        cw_test=args.cw_subset if args.cw_subset is not None else protocol.cw_test)
    return cfg, protocol


def _experiments(args, scale, budget, lab):
    from advlab.experiments import pipeline

    extra = {"purifier_epochs": args.epochs} if args.epochs is not None else {}
    cfg, plan = pipeline.configure(scale, budget, **lab, **extra)
    if args.perceptual:
        plan = plan.replace(perceptual=args.perceptual)
    if args.size:
        plan = plan.replace(purifier_kwargs={**plan.purifier_kwargs, **purifier_widths(args.size)})
    return cfg, plan


def _comparison(args, scale, budget, lab):
    from advlab.evaluation import comparison
    from advlab.experiments import pipeline

    overrides = {k: v for k, v in {"n_eval": getattr(args, "n_eval", None),
                                   "n_adaptive": getattr(args, "n_adaptive", None)}.items() if v is not None}
    if getattr(args, "purifier_run", None):
        overrides["cgan_run"] = str(Path(args.purifier_run).resolve())
    if getattr(args, "defences", None):
        chosen = names(args.defences)
        unknown = [d for d in chosen if d not in comparison.DEFENCES]
        if unknown:
            raise SystemExit(f"error: unknown defence(s) {unknown}; choose from {comparison.DEFENCES}")
        overrides["defences"] = chosen
    if getattr(args, "adaptive_attacks", None):
        overrides["adaptive_attacks"] = tuple(attack_names(args.adaptive_attacks))
    cfg, plan = comparison.configure(scale, budget, n_train=lab.pop("n_train", None), **overrides)
    cfg = cfg.replace(**lab) if lab else cfg
    if getattr(args, "size", None):
        base = pipeline.plan(cfg).purifier_kwargs if plan.purifier_kwargs is None else plan.purifier_kwargs
        plan = plan.replace(purifier_kwargs={**base, **purifier_widths(args.size)})
    if plan.n_eval is not None and (cfg.n_test is None or cfg.n_test > plan.n_eval):
        cfg = cfg.replace(n_test=plan.n_eval)     # attack only the test images that are evaluated
    return cfg, plan


def start(args, job: str, folder=None) -> Run:
    """Resolve the run, print it, save it as ``folder/run_config.json`` (if a folder) and seed."""
    from advlab.io.seeding import set_seed

    run = resolve_run(args, job)
    print(run.describe())
    if folder is not None:
        print(f"[advlab] run config saved to {run.save(folder)}")
    set_seed(run.cfg.seed)
    return run
