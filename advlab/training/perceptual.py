"""Feature extractors (backbones) for the perceptual loss, chosen explicitly and announced.

The paper's backbone is an ImageNet-pretrained VGG19 from ``keras.applications``; the loss
uses every conv layer but the topmost (``block5_conv4``). Grayscale images are replicated to 3
channels, small images are resized up to VGG's minimum of 32x32 and ImageNet preprocessing is
applied inside the extractor, so it takes the lab's usual [0, 1] NHWC images.

Without internet the ImageNet weights cannot be downloaded. Then choose, explicitly:

* ``"path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"``: a local VGG19 weights file;
* ``"classifier"``: the target classifier's own intermediate features (conv and dense layers
  but the logits), i.e. the purifier is taught to restore what the classifier looks at;
* ``"none"``: no perceptual term (L_cGAN + lambda1 L1 only).

``"auto"`` (the default of :class:`~advlab.purifiers.residual_cgan.CGANConfig`) means VGG19 with
ImageNet weights when they can be obtained, else the classifier's features, with a printed
NOTICE; the backbone actually used is recorded in the run's ``train_info.json``.

A VGG19 with *random* weights is only built when asked for by name (``"vgg19-random"``), and it
says so loudly: random features make a weak, misleading perceptual loss.
"""
from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

VGG_MIN_SIDE = 32
VGG19_DEFAULT_LAYERS = tuple(
    f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for c in range(1, n + 1)
)[:-1]  # all conv layers but the topmost (block5_conv4)


class PerceptualUnavailable(RuntimeError):
    """The requested perceptual backbone cannot be built (e.g. offline, missing weights file)."""


class FeatureExtractor:
    """A frozen map ``images in [0, 1] -> [feature maps]`` with a human-readable description."""

    def __init__(self, model: keras.Model, description: str, preprocess=None):
        model.trainable = False
        self.model = model
        self.description = description
        self._preprocess = preprocess

    def __call__(self, x):
        if self._preprocess is not None:
            x = self._preprocess(x)
        out = self.model(x, training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    @property
    def layer_names(self) -> list[str]:
        return [t.name.split("/")[0] for t in self.model.outputs]

    def __repr__(self) -> str:
        return f"<FeatureExtractor {self.description}>"


def _vgg_preprocess(side: int):
    def fn(x):
        x = tf.cast(x, tf.float32)
        if x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        if x.shape[1] != side or x.shape[2] != side:
            x = tf.image.resize(x, (side, side), method="bilinear")
        return keras.applications.vgg19.preprocess_input(x * 255.0)
    return fn


def vgg19_features(input_shape, weights: str | Path | None = "imagenet", layers=None,
                   allow_random: bool = False) -> FeatureExtractor:
    """VGG19 features of ``layers`` (default: all conv layers but ``block5_conv4``).

    ``weights``: ``"imagenet"`` (downloads once into ``~/.keras/models``), a path to a local
    weights file, or ``None`` (random; only with ``allow_random=True``).
    """
    side = max(int(input_shape[0]), VGG_MIN_SIDE)
    if weights is None and not allow_random:
        raise PerceptualUnavailable("VGG19 with random weights was not requested explicitly; "
                                    "pass allow_random=True (or perceptual='vgg19-random').")
    try:
        if weights == "imagenet":
            base = keras.applications.VGG19(include_top=False, weights="imagenet",
                                            input_shape=(side, side, 3))
            source = "ImageNet weights (keras.applications)"
        else:
            base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(side, side, 3))
            if weights is None:
                source = "RANDOM weights (explicitly requested; NOT a pretrained perceptual loss)"
            else:
                path = Path(weights).expanduser()
                if not path.is_file():
                    raise PerceptualUnavailable(f"VGG19 weights file not found: {path}")
                base.load_weights(str(path))
                source = f"weights from {path}"
    except PerceptualUnavailable:
        raise
    except Exception as err:  # download failures, bad files
        raise PerceptualUnavailable(
            f"Could not build VGG19 with weights={weights!r}: {type(err).__name__}: {err}\n"
            "Offline? Choose explicitly: perceptual='classifier' (the target classifier's features), "
            "a local file 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5', or 'none'."
        ) from err
    names = list(layers or VGG19_DEFAULT_LAYERS)
    unknown = [n for n in names if n not in [l.name for l in base.layers]]
    if unknown:
        raise ValueError(f"Unknown VGG19 layer(s) {unknown}; choose from {[l.name for l in base.layers]}")
    model = keras.Model(base.input, [base.get_layer(n).output for n in names], name="vgg19_features")
    return FeatureExtractor(model, f"VGG19 ({source}), {len(names)} layers {names[0]}..{names[-1]}",
                            preprocess=_vgg_preprocess(side))


def classifier_features(classifier: keras.Model, layers=None) -> FeatureExtractor:
    """Intermediate features of the target classifier (its conv/dense layers but the logits).

    Uses the top-level layers of a functional or Sequential model; a nested backbone (e.g. a
    ``keras.applications`` model inside a wrapper) counts as one layer, its output feature map.
    Pass ``layers`` (top-level names) to choose others.
    """
    try:
        inputs = classifier.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError("classifier_features needs a built functional/Sequential model with inputs.")
    # conv/dense layers, and nested backbones (keras.applications models wrapped with
    # preprocessing) as one feature map each; the last of them produces the logits
    last = classifier.layers[-1]
    if not layers and isinstance(last, keras.Model):
        return _nested_backbone_features(classifier, last)
    candidates = [l for l in classifier.layers
                  if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense, keras.Model))][:-1]
    chosen = ([classifier.get_layer(n) for n in layers] if layers else candidates)
    if not chosen:
        raise ValueError(f"No conv/dense layers before the logits found in {classifier.name!r}; "
                         "pass layers=[names] explicitly.")
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, [l.output for l in chosen],
                        name=f"{classifier.name}_features")
    return FeatureExtractor(model, f"target classifier {classifier.name!r} features, "
                                   f"{len(chosen)} layers {[l.name for l in chosen]}")


def _nested_backbone_features(classifier: keras.Model, inner: keras.Model, k: int = 4) -> FeatureExtractor:
    """Wrapper = a chain of preprocessing layers ending in a backbone that outputs the logits
    (the lab's keras.applications targets): features = ``k`` evenly spaced 4-D feature maps of
    the backbone, computed after the wrapper's own preprocessing."""
    maps = [l for l in inner.layers[1:] if len(l.output.shape) == 4]
    if not maps:
        raise ValueError(f"{inner.name!r} has no 4-D feature maps; pass layers=[names] explicitly.")
    picks = [maps[max(0, round((i + 1) * len(maps) / k) - 1)] for i in range(k)]   # ends at the last map
    picks = list(dict.fromkeys(picks))
    model = keras.Model(inner.inputs[0], [l.output for l in picks], name=f"{inner.name}_features")
    head = classifier.layers[1:-1]

    def preprocess(x):
        for layer in head:
            x = layer(x)
        return x

    return FeatureExtractor(model, f"target classifier {classifier.name!r} features: {len(picks)} maps of "
                                   f"{inner.name} {[l.name for l in picks]}", preprocess=preprocess)


PERCEPTUAL_CHOICES = ("auto", "vgg19", "classifier", "none", "vgg19-random", "<path to VGG19 weights file>")


def make_perceptual(spec: str | None, input_shape, classifier=None, verbose: bool = True):
    """Build the perceptual backbone named by ``spec`` and print which one is used.

    Returns a :class:`FeatureExtractor`, or ``None`` for ``"none"``.
    """
    spec = "none" if spec is None else str(spec)
    key = spec.strip().lower()
    if key == "auto":
        try:
            fx = vgg19_features(input_shape, weights="imagenet")
        except PerceptualUnavailable as err:
            if classifier is None:
                raise PerceptualUnavailable(f"{err}\n(perceptual='auto' falls back to the target "
                                            "classifier's features only when classifier= is given.)") from err
            print("[advlab.training.perceptual] NOTICE: VGG19 ImageNet weights are unavailable (offline?); "
                  "perceptual='auto' uses the TARGET CLASSIFIER's features instead of the paper's VGG19. "
                  "Pass perceptual='vgg19' to require VGG19.")
            fx = classifier_features(classifier)
    elif key == "none":
        fx = None
        msg = "no perceptual term (perceptual='none')"
    elif key == "vgg19":
        fx = vgg19_features(input_shape, weights="imagenet")
    elif key == "vgg19-random":
        fx = vgg19_features(input_shape, weights=None, allow_random=True)
    elif key == "classifier":
        if classifier is None:
            raise ValueError("perceptual='classifier' needs the target classifier (classifier=model).")
        fx = classifier_features(classifier)
    elif key.endswith((".h5", ".keras", ".weights.h5")):
        fx = vgg19_features(input_shape, weights=spec)
    else:
        raise ValueError(f"Unknown perceptual backbone {spec!r}; choose one of {PERCEPTUAL_CHOICES}.")
    if verbose:
        print(f"[advlab.training.perceptual] perceptual loss backbone: {msg if fx is None else fx.description}")
    return fx
