"""advlab: a TensorFlow lab for adversarial attacks and image-to-image purification defences.

Importing the package is cheap: it reads no files and does not import TensorFlow.
Subpackages are imported on first attribute access (``advlab.attacks``, ``advlab.io`` ...).

Vocabulary (used with one meaning everywhere in the package, the notebooks and the CLI):

==============  ==================================================================================
``x``           clean images: float32, NHWC, values in [0, 1]
``y``           integer class labels, shape ``(n,)``; never images
``x_adv``       adversarial images made from ``x`` (same shape, ``|x_adv - x|_inf <= eps``)
``x_clean``     the clean original an image-to-image model is trained to restore (a target, not ``y``)
``x_pur``       a purifier's output, ``purifier(x_adv)`` or ``purifier(x)``
``eps``         the attack's budget in the attack's norm (L-inf unless the attack says otherwise)
``classifier``  the target model: images in [0, 1] -> logits
``purifier``    a defence ``x -> x_pur`` (:class:`advlab.purifiers.Purifier`)
``defence``     what an evaluation attacks: a purifier in front of the classifier, or the
                classifier alone (an adversarially trained one, say)
accuracy        a fraction in [0, 1] in code and saved results; shown as a percentage
threat model    every accuracy names one: ``gray-box`` (attack the classifier only, then purify:
                the papers' setting, never called robustness), ``e2e`` (white-box through
                purifier + classifier), ``bpda``, ``eot``, ``transfer``, ``black-box``
scale, budget   ``ADVLAB_SCALE`` = ``smoke`` | ``full``; at full scale ``ADVLAB_BUDGET`` = ``paper`` | ``cpu``
==============  ==================================================================================
"""
from __future__ import annotations

import importlib
import os

# Before TensorFlow is first imported (lazily, by a submodule): no C++ INFO/WARNING logs. TF 2.21
# still prints its oneDNN notice (and absl's "before InitializeLog" line) once at import, whatever
# the level; only TF_ENABLE_ONEDNN_OPTS=0 silences it, and that made a residual-cGAN training step
# 2.1x slower on this project's CPU (figures/full/train_levers_no_onednn.json against the baseline
# of train_levers_paper.json, run right after it), so oneDNN stays on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_SUBMODULES = (
    "config", "io", "classifiers", "attacks", "purifiers", "training", "evaluation",
    "experiments", "viz", "cli",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"advlab.{name}")
    raise AttributeError(f"module 'advlab' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
