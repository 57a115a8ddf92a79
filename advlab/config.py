"""The lab's single scale knob.

Every notebook and long job reads one switch, ``ADVLAB_SCALE`` (``smoke`` or ``full``), and
gets a frozen :class:`LabConfig`. ``smoke`` runs each notebook in a minute or two on two CPU
cores using the embedded data sample; ``full`` is the paper scale (full MNIST/Fashion-MNIST
training and test sets, 40 attack iterations). The code path is the same for both: only the
numbers below change.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

SCALE_ENV = "ADVLAB_SCALE"


@dataclass(frozen=True)
class LabConfig:
    """Sizes and budgets for one run of the lab.

    ``None`` for a count means "all that the split has".
    """

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

    def replace(self, **changes) -> "LabConfig":
        """A copy with some fields changed (the config itself is frozen)."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, LabConfig] = {
    "smoke": LabConfig(
        scale="smoke", data_source="sample", n_train=1000, n_test=200,
        classifier_epochs=3, purifier_epochs=4, attack_iters=10, cw_steps=30,
        batch_size=64, residual_blocks=1,
    ),
    "full": LabConfig(
        scale="full", data_source="auto", n_train=None, n_test=None,
        classifier_epochs=12, purifier_epochs=20, attack_iters=40, cw_steps=100,
        batch_size=128, residual_blocks=7,
    ),
}


def get_config(scale: str | None = None, **overrides) -> LabConfig:
    """Return the preset for ``scale`` (default: ``$ADVLAB_SCALE``, else ``smoke``).

    Keyword overrides replace single fields, e.g. ``get_config("full", n_test=1000)``.
    """
    if scale is None:
        scale = os.environ.get(SCALE_ENV, "smoke")
    key = str(scale).strip().lower()
    if key not in PRESETS:
        raise ValueError(
            f"Unknown scale {scale!r} (from {SCALE_ENV} or the argument); "
            f"choose one of {sorted(PRESETS)}."
        )
    cfg = PRESETS[key]
    unknown = set(overrides) - {f.name for f in dataclasses.fields(LabConfig)}
    if unknown:
        raise TypeError(f"Unknown LabConfig field(s): {sorted(unknown)}")
    return cfg.replace(**overrides) if overrides else cfg


from_env = get_config


def classifier_config(cfg: LabConfig) -> LabConfig:
    """``cfg`` with its scale preset's ``n_train`` / ``n_test``: the target classifier is always
    trained as at its scale, whatever subset a purifier run attacks and trains on."""
    preset = PRESETS[cfg.scale]
    return cfg.replace(n_train=preset.n_train, n_test=preset.n_test)


BUDGET_ENV = "ADVLAB_BUDGET"
BUDGETS = ("paper", "cpu")
# Residual cGAN / pix2pix widths per budget (explained at advlab.purifiers.residual_cgan.SIZES)
# and how the "cpu" networks are trained: batch 64 at Adam 5e-4 (pix2pix's 2e-4 was tuned for
# batch 1). Shared by the Table I protocol, the experiments plan and the defence comparison.
PURIFIER_SIZES = {
    "paper": {},
    "cpu": {"base_filters": 32, "max_filters": 128, "disc_filters": 32, "disc_residual_blocks": 1},
}
CPU_PURIFIER_TRAINING = {**PURIFIER_SIZES["cpu"], "batch_size": 64, "learning_rate": 5e-4}


def resolve_budget(budget: str | None = None, verbose: bool = True) -> str:
    """How big the *full*-scale networks and training subsets are: ``"paper"`` or ``"cpu"``.

    ``"paper"`` is the papers' widths and data sizes (hundreds of CPU-hours for the residual
    cGAN; meant for a GPU). ``"cpu"`` keeps every protocol (attacks, eps, iterations, test sets)
    but uses CPU-sized networks and training subsets, so a full MNIST run fits about an hour on
    two CPU cores (the numbers live next to the code they size:
    ``advlab.purifiers.residual_cgan.TABLE_I_CPU``, ``advlab.experiments.pipeline.CPU_BUDGET``,
    ``advlab.evaluation.comparison.CPU_BUDGET``). Default: ``$ADVLAB_BUDGET``, else ``"paper"`` when
    TensorFlow sees a GPU and ``"cpu"`` otherwise; the choice is printed.
    """
    source = "argument"
    if budget is None and os.environ.get(BUDGET_ENV):
        budget, source = os.environ[BUDGET_ENV], f"${BUDGET_ENV}"
    if budget is None:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        budget, source = ("paper", f"{len(gpus)} GPU(s) visible") if gpus else ("cpu", "no GPU visible")
    key = str(budget).strip().lower()
    if key not in BUDGETS:
        raise ValueError(f"Unknown budget {budget!r} (from the {source}); choose one of {BUDGETS}.")
    if verbose:
        print(f"[advlab] full-scale budget: {key} ({source})")
    return key
