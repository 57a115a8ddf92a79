"""Target classifier architectures. Every model takes images in [0, 1] and returns LOGITS.

Preprocessing (rescaling, resizing) lives inside the model, so attacks, purifiers and plots all
work in one pixel space: [0, 1]. Architectures:

* ``mnist_cnn``   - the classic Keras MNIST convnet (2 conv + max-pool, dropout, dense).
* ``mnist_madry`` - Madry et al. 2018's MNIST network (5x5 convs 32/64, max-pool, dense 1024;
  3.3 M parameters): the capacity their PGD adversarial training needs at eps 0.3.
* ``mnist_lenet`` - LeNet-5 style: 5x5 convs, average pooling, tanh, two hidden dense layers.
* ``mnist_mlp``   - no convolutions: 2 hidden dense layers (for cross-model transfer studies).
* ``cifar_resnet``- a ResNet-20-style network (3 stages of basic residual blocks) for 32x32 RGB.
* ``inceptionv3``, ``resnet50v2``, ``inceptionresnetv2`` - ``keras.applications`` ImageNet
  models wrapped with resizing + their own ``[-1, 1]`` preprocessing; ``weights="imagenet"``
  downloads the pretrained weights (needs internet), ``weights=None`` builds them untrained.

The MNIST-family architectures also serve Fashion-MNIST (any ``input_shape``).
"""
from __future__ import annotations

import keras
from keras import layers

ARCHS = ("mnist_cnn", "mnist_madry", "mnist_lenet", "mnist_mlp", "cifar_resnet",
         "inceptionv3", "resnet50v2", "inceptionresnetv2")

# ImageNet wrappers: (keras.applications constructor name, native input side)
_IMAGENET = {
    "inceptionv3": ("InceptionV3", 299),
    "resnet50v2": ("ResNet50V2", 224),
    "inceptionresnetv2": ("InceptionResNetV2", 299),
}
_DEFAULT_SHAPE = {"mnist_cnn": (28, 28, 1), "mnist_madry": (28, 28, 1), "mnist_lenet": (28, 28, 1), "mnist_mlp": (28, 28, 1),
                  "cifar_resnet": (32, 32, 3)}


def _mnist_cnn(inp, num_classes):
    h = layers.Conv2D(32, 3, activation="relu")(inp)
    h = layers.MaxPooling2D()(h)
    h = layers.Conv2D(64, 3, activation="relu")(h)
    h = layers.MaxPooling2D()(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(0.5)(h)
    h = layers.Dense(128, activation="relu")(h)
    return layers.Dense(num_classes, name="logits")(h)


def _mnist_madry(inp, num_classes):
    h = layers.Conv2D(32, 5, padding="same", activation="relu")(inp)
    h = layers.MaxPooling2D()(h)
    h = layers.Conv2D(64, 5, padding="same", activation="relu")(h)
    h = layers.MaxPooling2D()(h)
    h = layers.Flatten()(h)
    h = layers.Dense(1024, activation="relu")(h)
    return layers.Dense(num_classes, name="logits")(h)


def _mnist_lenet(inp, num_classes):
    h = layers.Conv2D(6, 5, padding="same", activation="tanh")(inp)
    h = layers.AveragePooling2D(2)(h)
    h = layers.Conv2D(16, 5, activation="tanh")(h)
    h = layers.AveragePooling2D(2)(h)
    h = layers.Flatten()(h)
    h = layers.Dense(120, activation="tanh")(h)
    h = layers.Dense(84, activation="tanh")(h)
    return layers.Dense(num_classes, name="logits")(h)


def _mnist_mlp(inp, num_classes):
    h = layers.Flatten()(inp)
    h = layers.Dense(512, activation="relu")(h)
    h = layers.Dropout(0.2)(h)
    h = layers.Dense(256, activation="relu")(h)
    return layers.Dense(num_classes, name="logits")(h)


def _basic_block(h, filters, stride):
    shortcut = h
    h = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(h)
    h = layers.BatchNormalization()(h)
    h = layers.ReLU()(h)
    h = layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
    h = layers.BatchNormalization()(h)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.ReLU()(layers.Add()([h, shortcut]))


def _cifar_resnet(inp, num_classes, blocks_per_stage=3):
    h = layers.Normalization(mean=[0.491, 0.482, 0.447], variance=[0.061, 0.059, 0.068])(inp)
    h = layers.Conv2D(16, 3, padding="same", use_bias=False)(h)
    h = layers.ReLU()(layers.BatchNormalization()(h))
    for stage, filters in enumerate((16, 32, 64)):
        for b in range(blocks_per_stage):
            h = _basic_block(h, filters, 2 if (stage > 0 and b == 0) else 1)
    h = layers.GlobalAveragePooling2D()(h)
    return layers.Dense(num_classes, name="logits")(h)


def _imagenet(arch, inp, num_classes, weights, side=None):
    ctor_name, native = _IMAGENET[arch]
    side = native if side is None else int(side)
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet' for {arch}, got {weights!r}.")
    if weights == "imagenet" and num_classes != 1000:
        raise ValueError(f"Pretrained {arch} has 1000 ImageNet classes; num_classes={num_classes}.")
    if weights == "imagenet" and side != native:
        raise ValueError(f"Pretrained {arch} runs at its native side {native}; leave side=None (got {side}).")
    ctor = getattr(keras.applications, ctor_name)
    base = ctor(weights=weights, include_top=True, classes=num_classes,
                input_shape=(side, side, 3), classifier_activation=None)
    h = inp
    if tuple(inp.shape[1:3]) != (side, side):
        h = layers.Resizing(side, side, interpolation="bilinear", name="resize")(h)
    # keras.applications' "tf" preprocessing for these models maps [0, 255] to [-1, 1]:
    # from [0, 1] inputs that is x * 2 - 1.
    h = layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(h)
    return base(h)


def build_classifier(arch: str, input_shape=None, num_classes: int = 10, weights=None,
                     side: int | None = None) -> keras.Model:
    """Build (untrained, or ImageNet-pretrained with ``weights="imagenet"``) classifier ``arch``.

    The model's input is NHWC images in [0, 1]; its output is ``num_classes`` logits.
    ``side`` (ImageNet architectures only): the side the network runs at, inputs resized to it;
    default its native 299 / 224. A smaller one (at least 75 for the Inception models) keeps
    every layer and parameter at a fraction of the compute, for random-weight smoke runs.
    """
    key = str(arch).strip().lower()
    if key not in ARCHS:
        raise ValueError(f"Unknown classifier architecture {arch!r}; known: {list(ARCHS)}.")
    if input_shape is None:
        input_shape = _DEFAULT_SHAPE.get(key, (256, 256, 3))
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}.")
    if key in _IMAGENET and input_shape[2] != 3:
        raise ValueError(f"{key} needs RGB input (3 channels), got input_shape={input_shape}.")
    if key not in _IMAGENET and weights is not None:
        raise ValueError(f"{key} has no pretrained weights; train it with train_classifier().")
    if key not in _IMAGENET and side is not None:
        raise ValueError(f"side applies to the ImageNet architectures, not {key}; leave it None.")
    inp = keras.Input(input_shape, name="image")
    if key in _IMAGENET:
        out = _imagenet(key, inp, num_classes, weights, side)
    else:
        out = {"mnist_cnn": _mnist_cnn, "mnist_madry": _mnist_madry, "mnist_lenet": _mnist_lenet, "mnist_mlp": _mnist_mlp,
               "cifar_resnet": _cifar_resnet}[key](inp, num_classes)
    return keras.Model(inp, out, name=key)
