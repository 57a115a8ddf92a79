"""The experiments on real data: one :class:`Lab` per dataset holds the images, the target
classifier and on-disk caches of adversarial sets and trained purifiers.

>>> run = resolve("smoke", job="experiments")                    # doctest: +SKIP
>>> lab = prepare("mnist", run)
>>> x_adv = lab.adversarial("pgd")                                # cached in .cache/adversarial
>>> purifier = lab.purifier("pgd")                                # cached in .cache/purifiers

The run's :class:`Plan` (``run.plan``) says which attacks, sweep points and block counts an
experiment uses. Smoke plans are small enough for CI; full plans are the papers' protocols
(sized by the budget, :mod:`advlab.budgets`). The code path is the same.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from advlab.config import SIX_ATTACKS, Plan, resolve  # noqa: F401  (Plan, SIX_ATTACKS: public API)


def plan(cfg, **overrides) -> Plan:
    """The paper-budget :class:`Plan` at ``cfg.scale`` with some fields changed (a run passes its
    own: ``advlab.config.resolve(scale, budget, job="experiments").plan``)."""
    return resolve(cfg.scale, "paper", job="experiments").plan.replace(**overrides)


VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


def resolve_perceptual(spec: str = "auto", verbose: bool = True) -> str:
    """``"auto"`` -> ``"vgg19"`` (the paper's ImageNet VGG19) when Keras has its weights cached,
    else ``"classifier"`` (the target classifier's own features), announced; others pass through."""
    if spec != "auto":
        return spec
    import os

    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    if (keras_home / "models" / VGG19_FILE).is_file():
        return "vgg19"
    if verbose:
        print("[experiments] perceptual loss: ImageNet VGG19 weights not on disk (offline?), using the "
              "target classifier's features instead (perceptual='classifier'). Pass perceptual='vgg19' "
              "to download them.")
    return "classifier"


@dataclass
class Lab:
    """Data, target classifier and caches for experiments on one dataset."""

    dataset: str
    cfg: object
    arch: str
    classifier: object
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple = ()
    verbose: bool = True
    classifier_cfg: object = None     # the config the classifiers were trained with (None: cfg)
    _models: dict = field(default_factory=dict, repr=False)

    @property
    def preset(self) -> str:
        return "mnist" if self.dataset in ("mnist", "fashion_mnist") else "paper"

    @property
    def tag(self) -> str:
        """A readable label of the data and classifier settings (cache keys use :meth:`content_key`)."""
        c = self.cfg
        return (f"{self.dataset}_{c.data_source}_tr{c.n_train or 'all'}_te{c.n_test or 'all'}"
                f"_e{c.classifier_epochs}_s{c.seed}")

    def split(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``split`` ("train" or "test")."""
        return (self.x_test, self.y_test) if split == "test" else (self.x_train, self.y_train)

    def content_key(self, splits: Sequence[str] = ("train",), **parts) -> str:
        """A cache key of what this lab is made of: the images and labels of ``splits``, the target
        classifier's weights, the config (its ``n_test``, which no training depends on, left out
        when only "train" is named), and ``parts``; never a name or an object's identity."""
        from advlab.io.cache import array_digest, cache_key, plain, weights_digest

        cfg = plain(self.cfg)
        if list(splits) == ["train"] and isinstance(cfg, dict):
            cfg.pop("n_test", None)
        data = [a for s in splits for a in self.split(s)]
        classifier = None if self.classifier is None else weights_digest(self.classifier)
        return cache_key(data=array_digest(*data), classifier=classifier, cfg=cfg, **parts)

    def attack_params(self, attack: str, **overrides) -> dict:
        from advlab import attacks

        params = attacks.default_params(attack, self.preset, cfg=self.cfg)
        params.update(overrides)
        return params

    def classifier_for(self, arch: str):
        """Another trained classifier on the same data (cached by advlab.classifiers)."""
        if arch == self.arch:
            return self.classifier
        if arch not in self._models:
            from advlab import classifiers

            self._models[arch] = classifiers.get_classifier(self.dataset, self.classifier_cfg or self.cfg, arch=arch,
                                                            verbose=self.verbose)
        return self._models[arch]

    def adversarial(self, attack: str, split: str = "test", arch: str | None = None,
                    part: slice | None = None, only_cached: bool = False, **params) -> np.ndarray | None:
        """``attack`` on this lab's ``split`` images (or ``split[part]``) against classifier ``arch``.

        Made by :func:`advlab.attacks.adversarial_set`: cached on disk in chunks (shared with the
        other notebooks), so a long attack on 60k images resumes where it stopped.
        ``only_cached=True``: the finished cached set or ``None`` (no attack is run).
        """
        from advlab import attacks

        arch = arch or self.arch
        x, y = self.split(split)
        if part is not None:
            x, y = x[part], y[part]
        t0 = time.perf_counter()
        result = attacks.adversarial_set(self.dataset, split, attack, self.classifier_for(arch), x, y,
                                         preset=self.preset, cfg=self.cfg, batch_size=self.cfg.batch_size,
                                         seed=self.cfg.seed, progress=self.verbose, verbose=False,
                                         only_cached=only_cached, **params)
        if result is None:
            return None
        if self.verbose and time.perf_counter() - t0 > 1:
            print(f"[experiments] {attack} on {len(x)} {split} images vs {arch}: {time.perf_counter() - t0:.1f} s")
        return result.x_adv

    def attack_fn(self, split: str = "test"):
        """``(name, model, x, y, **params) -> x_adv`` for the runners, cached by content (see
        :meth:`adversarial`) when no parameter is overridden: a copy, a slice or a reordering of
        this lab's split is cut from the split's cached set, other images get their own cached
        set. Sweeps, which override eps / iterations, attack afresh (their results are
        checkpointed)."""
        def fn(name, model, x, y, **params):
            from advlab import attacks

            if params:
                return attacks.attack(name, model, x, y, batch_size=self.cfg.batch_size, progress=False,
                                      seed=self.cfg.seed, **self.attack_params(name, **params))
            rows = self._cached_rows(name, model, split, x, y)
            if rows is not None:
                return rows
            return attacks.adversarial_set(self.dataset, split, name, model, x, y, preset=self.preset, cfg=self.cfg,
                                           batch_size=self.cfg.batch_size, seed=self.cfg.seed,
                                           progress=self.verbose, verbose=False).x_adv
        return fn

    def _cached_rows(self, name: str, model, split: str, x, y) -> np.ndarray | None:
        """``x_adv`` of ``(x, y)`` taken from the finished cached ``name`` set of the whole split
        against ``model``, when every (image, label) pair of ``x`` is one of the split's; else None."""
        from advlab import attacks
        from advlab.io.cache import row_digests

        own_x, own_y = self.split(split)
        x = np.asarray(x, np.float32)
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if len(x) > len(own_x) or x.shape[1:] != own_x.shape[1:] or len(x) != len(y):
            return None
        whole = attacks.adversarial_set(self.dataset, split, name, model, own_x, own_y, preset=self.preset,
                                        cfg=self.cfg, batch_size=self.cfg.batch_size, seed=self.cfg.seed,
                                        verbose=False, only_cached=True)
        if whole is None:
            return None
        index = {d: i for i, d in enumerate(row_digests(np.asarray(own_x, np.float32),
                                                        np.asarray(own_y).astype(np.int64).reshape(-1)))}
        rows = [index.get(d) for d in row_digests(x, y)]
        return None if None in rows else whole.x_adv[rows]

    def training_pairs(self, attacks: str | Sequence[str], limit: int | None = None, stack: bool = False):
        """(x_adv, x_clean) training pairs on the first ``limit`` training images (default: all).

        Several attacks = the *composite* set: the images are split evenly and slice k
        (``x[k::K]``) is attacked with attack k only, so the versatile model sees as many pairs
        as each attack-specific one, and a slow attack (C&W, AutoAttack) costs 1/K of its run
        on the whole split (when the whole split is already attacked and cached, e.g. for an
        attack-specific purifier, its slice is reused instead).

        ``stack=True`` is the papers' composite instead: every attack on every image, K x n
        pairs (attack 0's pairs first), reusing the attack-specific purifiers' cached sets."""
        names = [attacks] if isinstance(attacks, str) else list(attacks)
        n = len(self.x_train) if limit is None else min(int(limit), len(self.x_train))
        whole = None if n == len(self.x_train) else slice(0, n)
        if len(names) == 1 or stack:
            x_adv = [self.adversarial(a, "train", part=whole) for a in names]
            return np.concatenate(x_adv), np.concatenate([self.x_train[:n]] * len(names))
        x_adv = np.empty_like(self.x_train[:n])
        for k, a in enumerate(names):
            cached = self.adversarial(a, "train", part=whole, only_cached=True)
            x_adv[k::len(names)] = (cached[k::len(names)] if cached is not None
                                    else self.adversarial(a, "train", part=slice(k, n, len(names))))
        return x_adv, self.x_train[:n]

    def purifier(self, attacks: str | Sequence[str], residual_blocks: int | None = None,
                 epochs: int | None = None, return_stats: bool = False, n_pairs: int | None = None,
                 stack: bool = False, **train_kwargs):
        """The residual-cGAN purifier trained on ``attacks`` (one name, or several = composite).

        Trained once, then loaded from ``.cache/experiments/purifiers/<key>``; an interrupted
        training resumes from its checkpoint there. ``return_stats`` also returns the
        final-epoch losses and seconds per epoch (for the ablation). ``stack``: see
        :meth:`training_pairs` (row name ``versatile_all``).
        """
        from advlab.experiments.training_adapter import load_or_train

        names = [attacks] if isinstance(attacks, str) else list(attacks)
        blocks = self.cfg.residual_blocks if residual_blocks is None else int(residual_blocks)
        epochs = self.cfg.purifier_epochs if epochs is None else int(epochs)
        stack = bool(stack) and len(names) > 1
        label = names[0] if len(names) == 1 else ("versatile_all" if stack else "versatile")
        train_kwargs["perceptual"] = resolve_perceptual(train_kwargs.get("perceptual", "auto"), self.verbose)
        key = f"{self.dataset}_{self.arch}_{label}_b{blocks}_ep{epochs}_" + self.content_key(
            attacks=names, attack_params={a: self.attack_params(a) for a in names}, blocks=blocks, epochs=epochs,
            train_kwargs=train_kwargs, n_pairs=n_pairs, stack=stack)
        purifier, stats = load_or_train(self, names, key, blocks, epochs, name=f"M_{label}", n_pairs=n_pairs,
                                        stack=stack, **train_kwargs)
        return (purifier, stats) if return_stats else purifier


def prepare(dataset: str = "mnist", cfg=None, arch: str | None = None, verbose: bool = True,
            classifier_cfg=None) -> Lab:
    """Load ``cfg.n_train`` / ``cfg.n_test`` images and the (cached) trained target classifier.

    ``cfg`` is a :class:`~advlab.config.RunConfig` (its ``cfg`` and ``classifier`` sections) or a
    :class:`~advlab.config.LabConfig`. ``classifier_cfg`` sizes the classifier's own training;
    default: the scale's own ``n_train`` / ``n_test``, so a run that attacks and trains purifiers
    on a subset still defends the scale's classifier (the one every other notebook uses)."""
    from advlab import classifiers
    from advlab.config import RunConfig, get_config
    from advlab.io import data

    if isinstance(cfg, RunConfig):
        cfg, classifier_cfg = cfg.cfg, classifier_cfg or cfg.classifier
    cfg = cfg or get_config()
    classifier_cfg = classifier_cfg or cfg.with_scale_sizes()
    ds = data.info(dataset)
    arch = arch or classifiers.DEFAULT_ARCH[ds.name]
    x_tr, y_tr = data.load(ds.name, "train", source=cfg.data_source, limit=cfg.n_train, verbose=verbose)
    x_te, y_te = data.load(ds.name, "test", source=cfg.data_source, limit=cfg.n_test, verbose=verbose)
    model = classifiers.get_classifier(ds.name, classifier_cfg or cfg, arch=arch, verbose=verbose)
    lab = Lab(ds.name, cfg, arch, model, x_tr, y_tr, x_te, y_te, tuple(ds.class_names), verbose, classifier_cfg)
    if verbose:
        print(f"[experiments] {ds.name}: {len(x_tr)} train / {len(x_te)} test images, target {arch}, "
              f"clean test accuracy {classifiers.accuracy(model, x_te, y_te):.2%}")
    return lab


def checkpoint_path(name: str) -> Path:
    """Where a table's resumable state lives (``.cache/experiments/state/<name>.json``)."""
    from advlab.io.paths import cache_dir

    return cache_dir("experiments", "state") / f"{name}.json"
