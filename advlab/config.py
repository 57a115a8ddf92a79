"""The run's configuration: one frozen :class:`RunConfig` per run, made by :func:`resolve`.

>>> run = resolve("full", "cpu", job="experiments", dataset="mnist")   # doctest: +SKIP
>>> print(run)                       # a short summary of what the run uses
>>> run.save(out_dir)                # out_dir/run_config.json; RunConfig.load(out_dir) repeats it
>>> cfg, plan = run.cfg, run.plan    # what prepare(), the attacks and the tables read

Two switches pick the numbers: the scale (``ADVLAB_SCALE``: ``smoke`` runs each notebook in a
minute or two on the embedded sample, ``full`` is the papers' data and attack strength) and, at
full scale, the budget (``ADVLAB_BUDGET``: ``paper`` | ``cpu``). Every number they change is in
:mod:`advlab.budgets`; the defaults of the classes below are the papers' settings. ``job``
names what the run needs: ``"scale"`` (notebooks 00-02, 04, 05), ``"table1"`` (notebook 03 and
``advlab train``), ``"experiments"`` (notebooks 06-09) and ``"comparison"`` (notebook 10).

This module is longer than 300 lines because it holds every section of the run config
(LabConfig, CGANConfig, Protocol, Plan, ComparisonPlan) beside the one function that fills them,
so all knobs and their defaults are in one file. It imports nothing else from the lab (no
TensorFlow), so every module can read it.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from advlab.budgets import BUDGETS, RECIPES, SCALES

SCALE_ENV = "ADVLAB_SCALE"
BUDGET_ENV = "ADVLAB_BUDGET"
JOBS = ("scale", "table1", "experiments", "comparison")
CONFIG_FILE = "run_config.json"


class Frozen:
    """The configs are frozen dataclasses; ``replace`` returns a copy with some fields changed."""

    def replace(self, **changes):
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {unknown}; its fields are {names}.")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class LabConfig(Frozen):
    """Data, classifier and attack sizes of one run (``None`` for a count: all the split has)."""

    scale: str
    data_source: str          # "sample" (embedded, offline) or "auto" (local files, then download)
    n_train: int | None       # clean training images (classifiers, purifier pairs per attack)
    n_test: int | None        # test images that are attacked / purified / evaluated
    classifier_epochs: int
    purifier_epochs: int
    attack_iters: int         # iterations of BIM / PGD / MI-FGSM (paper: 40)
    cw_steps: int             # optimisation steps of C&W
    batch_size: int
    residual_blocks: int = 7  # paper's choice for the residual cGAN
    seed: int = 0

    def with_scale_sizes(self) -> "LabConfig":
        """This config with its scale's own ``n_train`` / ``n_test``: what the target classifier
        trains with, whatever subset a run attacks and trains purifiers on."""
        return self.replace(n_train=SCALES[self.scale]["n_train"], n_test=SCALES[self.scale]["n_test"])


def _scale(scale: str | None) -> str:
    if scale is None:
        scale = os.environ.get(SCALE_ENV, "smoke")
    key = str(scale).strip().lower()
    if key not in SCALES:
        raise ValueError(f"Unknown scale {scale!r} (from {SCALE_ENV} or the argument); choose one of {sorted(SCALES)}.")
    return key


def get_config(scale: str | None = None, **overrides) -> LabConfig:
    """The :class:`LabConfig` of ``scale`` (default: ``$ADVLAB_SCALE``, else ``smoke``), with
    single fields replaced, e.g. ``get_config("full", n_test=1000)``. :func:`resolve` gives the
    whole run (purifier, protocol, plan) for a job and a budget."""
    key = _scale(scale)
    return LabConfig(scale=key, **SCALES[key]).replace(**overrides)


def resolve_budget(budget: str | None = None, verbose: bool = True) -> str:
    """How big the *full*-scale networks and training subsets are: ``"paper"`` or ``"cpu"``
    (the numbers: :mod:`advlab.budgets`). Default: ``$ADVLAB_BUDGET``, else ``"paper"`` when
    TensorFlow sees a GPU and ``"cpu"`` otherwise; the choice is printed."""
    source = "argument"
    if budget is None and os.environ.get(BUDGET_ENV):
        budget, source = os.environ[BUDGET_ENV], f"${BUDGET_ENV}"
    if budget is None:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        budget, source = ("paper", f"{len(gpus)} GPU(s) visible") if gpus else ("cpu", "no GPU visible")
    key = str(budget).strip().lower()
    choices = tuple(b for b in BUDGETS if b != "smoke")
    if key not in choices:
        raise ValueError(f"Unknown budget {budget!r} (from the {source}); choose one of {choices}.")
    if verbose:
        print(f"[advlab] full-scale budget: {key} ({source})")
    return key


SCHEDULES = ("constant", "multistep")
MIXED_PRECISION = (None, "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class CGANConfig(Frozen):
    """Architecture and optimisation of the residual cGAN (defaults = paper / pix2pix); checked
    on construction, so a config that exists is valid."""

    residual_blocks: int = 7
    disc_residual_blocks: int | None = None   # None: same as residual_blocks
    base_filters: int = 64
    max_filters: int = 512
    disc_filters: int = 64
    dropout: float = 0.5
    lambda_l1: float = 100.0
    lambda_perc: float = 1.0
    schedule: str = "constant"                # "multistep": versatile-defence 40/30/30 schedule
    learning_rate: float = 2e-4
    lr_decay_start: float | None = None       # e.g. 0.5: pix2pix's linear decay over the last half
    beta_1: float = 0.5
    batch_size: int = 64
    epochs: int = 20
    perceptual: str = "auto"                  # see advlab.training.perceptual.make_perceptual
    mixed_precision: str | None = None        # None | "mixed_float16" | "mixed_bfloat16"
    seed: int = 0                             # initial weights, batch order, dropout

    def __post_init__(self):
        for name, low in {"residual_blocks": 0, "base_filters": 1, "max_filters": 1, "disc_filters": 1,
                          "batch_size": 1, "epochs": 1}.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ValueError(f"CGANConfig.{name} must be an integer >= {low}, got {v!r}.")
        d = self.disc_residual_blocks
        if d is not None and (not isinstance(d, int) or isinstance(d, bool) or d < 0):
            raise ValueError(f"CGANConfig.disc_residual_blocks must be None or an integer >= 0, got {d!r}.")
        if self.max_filters < self.base_filters:
            raise ValueError(f"max_filters ({self.max_filters}) < base_filters ({self.base_filters}).")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        for name in ("lambda_l1", "lambda_perc"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}.")
        if not (self.learning_rate > 0 and 0 <= self.beta_1 < 1):
            raise ValueError(f"need learning_rate > 0 and 0 <= beta_1 < 1, got {self.learning_rate}, {self.beta_1}.")
        s = self.lr_decay_start
        if s is not None and not (isinstance(s, (int, float)) and 0.0 <= s < 1.0):
            raise ValueError(f"lr_decay_start must be None or in [0, 1), got {s!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}; choose one of {SCHEDULES}.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}.")

    @classmethod
    def for_scale(cls, cfg: LabConfig, budget: str = "paper") -> "CGANConfig":
        """The purifier of a :class:`LabConfig`: its residual blocks, purifier epochs and batch
        size, with the budget's widths and training (:mod:`advlab.budgets`; smoke scale always
        has its own small networks)."""
        key = "smoke" if cfg.scale == "smoke" else budget
        if key not in BUDGETS:
            raise ValueError(f"Unknown budget {budget!r}; choose one of {sorted(BUDGETS)}.")
        return cls(**{"residual_blocks": cfg.residual_blocks, "epochs": cfg.purifier_epochs,
                      "batch_size": cfg.batch_size, "seed": cfg.seed, **BUDGETS[key]["purifier"]})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Protocol(Frozen):
    """Sizes of a Table I run: clean training images per attack (``n_train``; ``None`` = all),
    smaller subsets for some attacks (``train_subset``); the test images of the slow attacks,
    the first ``cw_test`` for C&W as the paper does and ``test_subset`` for any other (e.g.
    DeepFool, AutoAttack); the attacks it trains and evaluates on, at ``eps`` (``None``: each
    attack preset's); and ``clean_pairs`` clean -> clean training pairs beside the attacked ones."""

    n_train: int | None = None
    train_subset: dict = field(default_factory=dict)
    cw_test: int = 1000       # the paper's: C&W on the first 1,000 test images
    test_subset: dict = field(default_factory=dict)
    attacks: tuple = ("fgsm", "pgd", "cw")
    eps: float | None = None
    # the first N clean training images also as clean -> clean pairs, so the purifier learns to
    # leave a clean image alone (trained on attacked inputs only, it over-corrects them)
    clean_pairs: int = 0

    def __post_init__(self):
        n = self.clean_pairs
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"Protocol.clean_pairs must be an integer >= 0, got {n!r}.")

    def train_images(self, attack: str) -> int | None:
        """How many of the clean training images ``attack`` is crafted on (``None`` = all)."""
        return self.train_subset.get(attack, self.n_train)

    def test_images(self, attack: str) -> int | None:
        """How many of the first test images ``attack`` is evaluated on (``None`` = all)."""
        return self.test_subset.get(attack, self.cw_test if attack == "cw" else None)



# ----------------------------------------------------------------- what the long jobs run
PAPER_EPS = (2 / 255, 5 / 255, 10 / 255)
MNIST_EPS = (0.1, 0.2, 0.3)
PAPER_ITERATIONS = tuple(range(10, 101, 10))
SIX_ATTACKS = ("fgsm", "bim", "pgd", "mifgsm", "cw", "autoattack")
CHANNELS = ("save-png", "save-jpeg", "print-scan")
LEARNED = ("residual_cgan", "versatile_pix2pix", "autoencoder", "autoencoder_noisy", "cap_gan")
CLASSICAL = ("bit_depth", "median", "jpeg", "tvm", "wavelet")
DEFENCES = ("none",) + LEARNED + CLASSICAL


@dataclass(frozen=True)
class Plan(Frozen):
    """What each experiment runs at one scale."""

    train_attacks: tuple = SIX_ATTACKS
    test_attacks: tuple = SIX_ATTACKS + ("deepfool",)
    transfer_archs: tuple = ("mnist_cnn", "mnist_lenet", "mnist_mlp")
    transfer_attacks: tuple = ("fgsm", "pgd", "mifgsm", "cw", "deepfool")
    sweep_attacks: tuple = ("pgd", "mifgsm")
    sweep_iterations: tuple = PAPER_ITERATIONS
    sweep_eps: tuple = PAPER_EPS + MNIST_EPS
    eps_grid: tuple = (0.0, 2 / 255, 5 / 255, 10 / 255, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    sweep_n: int | None = 2000            # test images per sweep point (None: all)
    ablation_blocks: tuple = (0, 1, 3, 5, 7, 9, 11, 13, 15)
    ablation_attacks: tuple = ("fgsm", "pgd", "cw")
    ablation_epochs: int | None = None    # None: cfg.purifier_epochs
    ablation_seeds: tuple | None = None   # purifier seeds per block count (None: one, the config's)
    grid_n: int = 6
    purifier_epochs: int | None = None    # None: cfg.purifier_epochs
    purifier_kwargs: dict = field(default_factory=dict)   # CGANConfig fields over the scale's purifier
    perceptual: str = "auto"              # "auto": VGG19 if its weights are on disk, else "classifier"
    # the papers' versatile model: every attack on *all* training images (K x n_train pairs), a
    # second matrix row "versatile_all" beside "versatile" (K attacks share n_train pairs)
    versatile_all: bool = True
    versatile_all_epochs: int | None = None   # None: the purifier epochs


@dataclass(frozen=True)
class ComparisonPlan(Frozen):
    """What one defence-comparison run does."""

    defences: tuple = DEFENCES
    gray_attacks: tuple = ("fgsm", "pgd", "mifgsm", "cw")
    adaptive_attacks: tuple = ("pgd", "mifgsm", "autoattack")
    channel_attack: str = "pgd"
    channels: tuple = CHANNELS
    n_eval: int | None = 1000            # test images for every cell (None: all of lab.x_test)
    n_adaptive: int | None = 1000        # images for e2e / bpda cells ...
    n_adaptive_slow: int = 100           # ... or this many when one attack step costs > slow_ms per image
    slow_ms: float = 5.0
    eot_samples: int = 10
    print_scan_strength: float = 0.5
    learned_attacks: tuple = ("fgsm", "pgd")          # training composite of the auto-encoder
    capgan_attacks: tuple = ("fgsm",)                 # CAP-GAN's adversarial domain: FGSM, as published
    cgan_attacks: tuple = ("fgsm", "pgd", "cw")       # residual cGAN: the paper's three
    versatile_attacks: tuple = ("fgsm", "bim", "pgd", "mifgsm", "cw", "autoattack")
    ae_epochs: int = 20
    capgan_epochs: int = 10
    capgan_pairs: int | None = 20000     # CAP-GAN trains on this many pairs (None: all)
    capgan_filters: int = 32
    capgan_eager: bool = False           # smoke: skip the ~1 min graph compilation for 2 steps
    # residual cGAN / pix2pix: CGANConfig fields over the scale's purifier (the experiments'
    # own, so these purifiers are the very ones notebooks 06-09 trained and cached)
    purifier_kwargs: dict = field(default_factory=dict)
    purifier_epochs: int | None = None   # residual cGAN epochs (None: cfg.purifier_epochs)
    versatile_pairs: int | None = None   # composite on the first N training images (None: all)
    versatile_epochs: int | None = None  # None: purifier_epochs
    cgan_run: str | None = None          # folder of a `python -m advlab train` run: use its generator


PLANS = {"experiments": Plan, "comparison": ComparisonPlan}


@dataclass(frozen=True)
class RunConfig(Frozen):
    """Everything one run uses. ``cfg`` sizes data and attacks (what ``prepare``, the attacks and
    the tables read); ``classifier`` is what the target classifier trains with (the scale's own
    images, whatever subset the run attacks); ``purifier`` is the residual cGAN the job trains;
    ``protocol`` (table1) and ``plan`` (experiments, comparison) say what is run on them."""

    job: str
    scale: str
    budget: str                 # "smoke" at smoke scale, else "paper" | "cpu"
    dataset: str | None
    cfg: LabConfig
    classifier: LabConfig
    purifier: CGANConfig
    protocol: Protocol | None = None
    plan: Plan | ComparisonPlan | None = None

    def __post_init__(self):
        for name, valid in (("job", JOBS), ("scale", tuple(SCALES)), ("budget", tuple(BUDGETS))):
            if getattr(self, name) not in valid:
                raise ValueError(f"RunConfig.{name} must be one of {valid}, got {getattr(self, name)!r}.")

    def to_dict(self) -> dict:
        """Plain JSON data (tuples as lists); :meth:`from_dict` reads it back."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """The config :meth:`to_dict` wrote (e.g. read from a ``run_config.json``)."""
        data = dict(data)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING]
        if missing:
            raise ValueError(f"not a run config: {missing} missing (keys given: {sorted(data)}).")
        types = {"cfg": LabConfig, "classifier": LabConfig, "purifier": CGANConfig, "protocol": Protocol,
                 "plan": PLANS.get(data["job"])}
        for name, kind in types.items():
            if data.get(name) is not None:
                data[name] = _section(kind, data[name])
        return cls(**data)

    def save(self, folder) -> Path:
        """Write ``folder/run_config.json`` (atomically) and return its path."""
        from advlab.io.cache import save_json_atomic

        path = Path(folder) / CONFIG_FILE
        save_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path) -> "RunConfig":
        """The config saved by :meth:`save` (``path``: the file or its folder)."""
        path = Path(path)
        return cls.from_dict(json.loads((path / CONFIG_FILE if path.is_dir() else path).read_text()))

    def __str__(self) -> str:
        c = self.cfg
        lines = [f"run config: job={self.job} scale={self.scale} budget={self.budget} dataset={self.dataset or '-'}",
                 f"  data        source={c.data_source} n_train={c.n_train or 'all'} n_test={c.n_test or 'all'} "
                 f"seed={c.seed}",
                 f"  classifier  epochs={c.classifier_epochs} n_train={self.classifier.n_train or 'all'} "
                 f"batch_size={c.batch_size}",
                 f"  attacks     iterations={c.attack_iters} cw_steps={c.cw_steps}",
                 f"  purifier    {_changed(self.purifier, always=('residual_blocks', 'epochs', 'batch_size'))}"]
        if self.protocol is not None:
            lines.append(f"  protocol    {_changed(self.protocol, always=('n_train', 'cw_test'))}")
        if self.plan is not None:
            plan = _changed(self.plan, skip=("purifier_kwargs",))       # shown as the purifier
            lines.append(f"  plan        {plan or 'the defaults (the papers)'}")
        return "\n".join(lines)


def _changed(obj, always=(), skip=()) -> str:
    """``name=value`` for the fields in ``always`` or differing from the class defaults."""
    default = type(obj)()
    return " ".join(f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj) if f.name not in skip
                    and (f.name in always or getattr(obj, f.name) != getattr(default, f.name)))


def _section(kind, data: dict):
    """A section class from JSON data: lists back to tuples where the field holds a tuple."""
    if not isinstance(data, dict):
        raise ValueError(f"{kind.__name__} data must be a dict, got {type(data).__name__}.")
    names = [f.name for f in dataclasses.fields(kind)]
    if set(data) - set(names):
        raise ValueError(f"{kind.__name__} has no field(s) {sorted(set(data) - set(names))}; its fields are {names}.")
    tuples = {f.name for f in dataclasses.fields(kind) if str(f.type).startswith("tuple")}
    return kind(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in data.items()})


def _split(overrides: dict, sections: dict) -> dict:
    """``{section: {field: value}}`` from ``resolve``'s keyword overrides (``field`` or ``section__field``)."""
    fields = {s: [f.name for f in dataclasses.fields(kind) if f.name != "scale"] for s, kind in sections.items()}
    owners = {}
    for s, names in fields.items():
        for n in names:
            owners.setdefault(n, []).append(s)
    valid = sorted(n for n, o in owners.items() if len(o) == 1) + sorted(
        f"{s}__{n}" for n, o in owners.items() if len(o) > 1 for s in o)
    out = {s: {} for s in sections}
    for key, value in overrides.items():
        section, _, name = key.rpartition("__")
        where = [section] if section else owners.get(key, [])
        if section and (section not in fields or name not in fields[section]):
            where = []
        if len(where) != 1:
            why = (f"is a field of {where}: write one of {[f'{s}__{key}' for s in where]}" if where
                   else f"is no field of this job's config; valid: {valid}")
            raise TypeError(f"resolve(): override {key!r} {why}")
        out[where[0]][name or key] = value
    return out


def resolve(scale: str | None = None, budget: str | None = None, job: str = "scale", dataset: str | None = None,
            **overrides) -> RunConfig:
    """The :class:`RunConfig` of ``job`` at ``scale`` and (full scale only) ``budget``.

    ``scale`` defaults to ``$ADVLAB_SCALE`` (else smoke), ``budget`` to :func:`resolve_budget`'s
    choice; the numbers are :mod:`advlab.budgets`. ``overrides`` replace single fields: a name
    that one section has (``n_test=500``, ``sweep_n=100``, ``base_filters=16``) or
    ``section__name`` for a name several share (``cfg__batch_size``, ``purifier__batch_size``).
    Overrides of ``cfg`` apply first, so the purifier and plan follow them; for the experiments
    and the comparison, purifier overrides join the plan's ``purifier_kwargs`` (what they train).
    """
    if job not in JOBS:
        raise ValueError(f"Unknown job {job!r}; choose one of {JOBS}.")
    scale = _scale(scale)
    budget = "smoke" if scale == "smoke" else resolve_budget(budget, verbose=budget is None)
    table = copy.deepcopy(BUDGETS[budget])    # a caller changing its run's dicts changes no table
    this, recipe = table.get(job, {}), copy.deepcopy(RECIPES.get((dataset, budget), {}).get(job, {}))
    this = {section: {**this.get(section, {}), **recipe.get(section, {})} for section in {*this, *recipe}}
    sections = {"cfg": LabConfig, "purifier": CGANConfig,
                **({"protocol": Protocol} if job == "table1" else {}),
                **({"plan": PLANS[job]} if job in PLANS else {})}
    if "seed" in overrides:   # one seed per run: the purifier trains with the config's (CGANConfig.for_scale)
        overrides = {**{k: v for k, v in overrides.items() if k != "seed"}, "cfg__seed": overrides["seed"]}
    changes = _split(overrides, sections)
    if job in PLANS and "residual_blocks" in changes["purifier"]:
        # the labs take the purifier's blocks from cfg (and the ablation varies them per model)
        changes["cfg"].setdefault("residual_blocks", changes["purifier"].pop("residual_blocks"))
    cfg = get_config(scale).replace(**{**this.get("cfg", {}), **changes["cfg"]})
    classifier = cfg.with_scale_sizes()
    protocol = plan = None
    if job in PLANS:
        # the plan's purifier_kwargs are what the job trains; the comparison trains the
        # experiments' purifiers, so the cached ones are shared. Epochs (and the experiments'
        # perceptual term) are plan fields.
        kwargs = {**table["purifier"], **table.get("experiments", {}).get("purifier", {}),
                  **this.get("purifier", {}), **changes["purifier"]}
        moved = ("epochs", "perceptual") if job == "experiments" else ("epochs",)
        plan_changes = {("purifier_epochs" if k == "epochs" else k): kwargs.pop(k) for k in moved if k in kwargs}
        plan = PLANS[job](**{**this.get("plan", {}), "purifier_kwargs": kwargs, **plan_changes, **changes["plan"]})
        trained = dict(plan.purifier_kwargs)
        trained["epochs"] = plan.purifier_epochs or trained.get("epochs") or cfg.purifier_epochs
        if job == "experiments":
            trained["perceptual"] = plan.perceptual
        purifier = CGANConfig.for_scale(cfg).replace(**trained)
    else:
        purifier = CGANConfig.for_scale(cfg, budget).replace(**{**this.get("purifier", {}), **changes["purifier"]})
    if job == "table1":
        protocol = Protocol(**{"n_train": cfg.n_train, **this.get("protocol", {}), **changes["protocol"]})
    return RunConfig(job, scale, budget, dataset, cfg, classifier, purifier, protocol, plan)
