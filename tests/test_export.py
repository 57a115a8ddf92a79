"""advlab.purifiers.export.fold_batchnorm: batch norm folded into the convolutions, same outputs."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from advlab.purifiers.export import FoldedBatchNorm, count_layers, fold_batchnorm
from advlab.purifiers.residual_cgan import as_purifier, build_generator


def _random_statistics(model, seed=0):
    """Batch-norm statistics and affine terms far from the identity, so a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.5, 2, n)])
    return model


@pytest.fixture(scope="module")
def generator():
    return _random_statistics(build_generator((28, 28, 1), residual_blocks=2, base_filters=8, max_filters=32))


def test_folded_generator_computes_the_same_images_and_gradients(generator):
    before = [w.copy() for w in generator.get_weights()]
    folded = fold_batchnorm(generator)
    assert count_layers(generator) > 0 and count_layers(folded) == 0          # every BN follows a conv
    assert count_layers(folded, FoldedBatchNorm) == count_layers(generator)
    assert count_layers(folded, layers.Conv2D) == count_layers(generator, layers.Conv2D)
    x = tf.constant(np.random.default_rng(1).random((6, 28, 28, 1), dtype=np.float32))
    np.testing.assert_allclose(folded(x, training=False), generator(x, training=False), atol=2e-5)

    def grad(model):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(model(x, training=False) ** 2)
        return tape.gradient(loss, x)

    np.testing.assert_allclose(grad(folded), grad(generator), atol=1e-4)
    for a, b in zip(before, generator.get_weights()):                            # the original is untouched
        np.testing.assert_array_equal(a, b)
    assert count_layers(generator) == len([w for w in generator.layers if isinstance(w, layers.BatchNormalization)])


def test_folded_model_saves_loads_and_purifies(generator, tmp_path):
    folded = fold_batchnorm(generator, name="g_folded")
    path = tmp_path / "g.keras"
    folded.save(path)
    again = keras.models.load_model(path)
    x = np.random.default_rng(2).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(again(x, training=False), folded(x, training=False), atol=1e-6)
    assert again.name == "g_folded"
    np.testing.assert_allclose(as_purifier(again)(x), as_purifier(generator)(x), atol=2e-5)


def test_a_conv_read_by_another_layer_keeps_its_batch_norm():
    inp = keras.Input((8, 8, 2))
    conv = layers.Conv2D(4, 3, padding="same", use_bias=True, name="conv")(inp)
    out = layers.Add()([layers.BatchNormalization(name="bn")(conv), conv])
    model = _random_statistics(keras.Model(inp, out))
    folded = fold_batchnorm(model)
    assert count_layers(folded) == 1                        # not foldable: the conv is read twice
    x = np.random.default_rng(3).random((2, 8, 8, 2), dtype=np.float32)
    np.testing.assert_allclose(folded(x, training=False), model(x, training=False), atol=1e-6)

    inp = keras.Input((8, 8, 2))
    biased = _random_statistics(keras.Model(inp, layers.BatchNormalization()(layers.Conv2D(4, 3)(inp))))
    biased.layers[1].bias.assign(np.arange(4, dtype=np.float32))               # the conv's own bias counts
    np.testing.assert_allclose(fold_batchnorm(biased)(x, training=False), biased(x, training=False), atol=1e-5)


def test_fold_refuses_what_is_not_a_keras_model():
    with pytest.raises(TypeError, match="functional Keras model"):
        fold_batchnorm(lambda x: x)
    with pytest.raises(TypeError, match="functional Keras model"):
        fold_batchnorm(keras.Sequential([keras.Input((4, 4, 1)), layers.Conv2D(2, 3), layers.BatchNormalization()]))


def test_as_purifier_folds_and_compiles_to_the_same_images(generator):
    x = np.random.default_rng(4).random((5, 28, 28, 1), dtype=np.float32)
    plain = as_purifier(generator)(x)
    for kwargs in ({"fold": True}, {"jit_compile": True}, {"fold": True, "jit_compile": True}):
        purifier = as_purifier(generator, **kwargs)
        np.testing.assert_allclose(purifier(x), plain, atol=5e-5, err_msg=str(kwargs))
        assert purifier.jit_compile is kwargs.get("jit_compile", False)
        assert (count_layers(purifier.model) == 0) is kwargs.get("fold", False)
    batch1 = as_purifier(generator, fold=True)
    np.testing.assert_allclose(batch1(x, batch_size=1), plain, atol=5e-5)      # one graph, every batch size
    np.testing.assert_allclose(batch1(x.astype(np.float64)), plain, atol=5e-5)  # cast, not retraced or refused
