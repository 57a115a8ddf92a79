"""Adversarial-training baselines and the robust purifier trainer, on tiny models (seconds)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from advlab.training.adversarial import AdversarialConfig, AdversarialTrainer, craft, train_adversarial
from advlab.training.robust_purifier import (RobustPurifierConfig, RobustPurifierTrainer,
                                             train_robust_purifier)


def tiny_classifier(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(3)], name="tiny")


def tiny_generator():
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inp)
    return keras.Model(inp, out, name="tiny_g")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 48)
    x = rng.uniform(0, 0.3, (48, 8, 8, 1))  # class 0: dark; 1: bright top; 2: bright bottom
    x[y == 1, :4] += 0.6
    x[y == 2, 4:] += 0.6
    return np.clip(x, 0, 1).astype(np.float32), y


@pytest.mark.parametrize("method", ["pgd", "fgsm_rs", "trades"])
def test_one_step_lowers_the_adversarial_loss(method, data):
    x, y = data
    cfg = AdversarialConfig(method=method, eps=0.1, pgd_steps=3, ramp_epochs=0, learning_rate=0.05)
    trainer = AdversarialTrainer(tiny_classifier(), cfg)
    trainer.compile(optimizer=keras.optimizers.SGD(0.05))
    xt, yt = tf.constant(x), tf.constant(y, tf.int64)
    seed = tf.constant([1, 2], tf.int64)
    before = float(trainer.adversarial_loss(xt, yt, 0.1, seed, training=False)[0])
    trainer.train_step((xt, yt))
    after = float(trainer.adversarial_loss(xt, yt, 0.1, seed, training=False)[0])
    assert np.isfinite(before) and after < before


def test_craft_stays_in_the_ball_and_raises_the_loss(data):
    x, y = data
    model = tiny_classifier()
    xt, yt = tf.constant(x), tf.constant(y, tf.int64)
    ce = lambda t: float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yt, model(t))))  # noqa: E731
    x_adv = craft(lambda t: model(t), xt, yt, 0.1, "pgd", 5, tf.constant([0, 0], tf.int64)).numpy()
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert ce(x_adv) > ce(xt)


def test_train_adversarial_copies_and_resumes(data, tmp_path):
    x, y = data
    clf = tiny_classifier()
    w0 = [w.copy() for w in clf.get_weights()]
    x0 = x.copy()
    cfg = AdversarialConfig(method="fgsm_rs", eps=0.1, epochs=1, ramp_epochs=1, batch_size=16)
    robust = train_adversarial(clf, x, y, cfg, run_dir=tmp_path, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(w0, clf.get_weights()))  # caller's model untouched
    np.testing.assert_array_equal(x, x0)
    assert robust is not clf and robust(x[:2]).shape == (2, 3)
    assert (tmp_path / "classifier.keras").is_file() and (tmp_path / "history.csv").is_file()
    # rerunning the finished run restores its checkpoint instead of training again
    more = train_adversarial(clf, x, y, cfg, run_dir=tmp_path, verbose=0)
    np.testing.assert_allclose(more.get_weights()[0], robust.get_weights()[0])
    with pytest.raises(ValueError, match="another config"):
        train_adversarial(clf, x, y, cfg.replace(eps=0.2), run_dir=tmp_path, verbose=0)


def test_bad_configs():
    with pytest.raises(ValueError, match="Unknown method"):
        AdversarialConfig(method="madry")
    with pytest.raises(ValueError, match="eps"):
        AdversarialConfig(eps=-0.1)
    with pytest.raises(ValueError, match="epochs"):
        AdversarialConfig(epochs=0)
    with pytest.raises(ValueError, match="Unknown method"):
        RobustPurifierConfig(attack="trades")
    with pytest.raises(ValueError, match="lambda"):
        RobustPurifierConfig(lambda_l1=-1)


@pytest.mark.parametrize("joint", [False, True])
def test_robust_purifier_step_is_finite_and_only_trains_what_it_should(joint, data):
    x, y = data
    g, f = tiny_generator(), tiny_classifier()
    f_w = [w.copy() for w in f.get_weights()]
    cfg = RobustPurifierConfig(attack="pgd", pgd_steps=2, eps=0.1, ramp_epochs=0, train_classifier=joint)
    trainer = RobustPurifierTrainer(g, f, cfg)
    trainer.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3) if joint else None)
    g_w = [w.copy() for w in g.get_weights()]
    logs = trainer.train_step((tf.constant(x[:8]), tf.constant(y[:8], tf.int64)))
    assert set(logs) >= {"loss", "ce_adv", "l1_adv", "ce_clean", "l1_clean"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert not all(np.array_equal(a, b) for a, b in zip(g_w, g.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(f_w, f.get_weights())) != joint


def test_train_robust_purifier_returns_a_purifier(data, tmp_path):
    x, y = data
    g, f = tiny_generator(), tiny_classifier()
    g_w = [w.copy() for w in g.get_weights()]
    purifier, clf = train_robust_purifier(g, f, x, y, RobustPurifierConfig(eps=0.1, batch_size=16),
                                          run_dir=tmp_path, verbose=0)
    assert clf is f and all(np.array_equal(a, b) for a, b in zip(g_w, g.get_weights()))
    out = purifier(x[:4])
    assert out.shape == x[:4].shape and out.min() >= 0 and out.max() <= 1
    assert (tmp_path / "generator.keras").is_file()
    with pytest.raises(ValueError, match="generator returns"):
        bad = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 1)])
        train_robust_purifier(bad, f, x, y, verbose=0)


def test_warm_up_turns_a_fresh_generator_towards_a_denoiser(data):
    """The noisy -> clean L1 falls over the warm-up steps, on a copy of nothing: G itself is trained."""
    from advlab.training.robust_purifier import warm_up

    x, _ = data
    g = tiny_generator()
    noisy_l1 = lambda: float(np.mean(np.abs(np.clip(g(np.clip(x + 0.1, 0, 1)).numpy(), 0, 1) - x)))  # noqa: E731
    before = noisy_l1()
    x_before = x.copy()
    warm_up(g, x, RobustPurifierConfig(eps=0.1, batch_size=16, warmup_steps=60, learning_rate=1e-2))
    assert noisy_l1() < before and np.array_equal(x, x_before)
    with pytest.raises(ValueError, match="warmup_steps"):
        RobustPurifierConfig(warmup_steps=-1)


def test_straight_through_binarize_is_the_bit_depth_defence_forward_and_identity_backward():
    from advlab.purifiers.classical import build_classical
    from advlab.training.adversarial import straight_through_binarize

    x = np.random.default_rng(1).random((6, 8, 8, 1)).astype(np.float32)
    x[0, 0, 0, 0], x[0, 0, 1, 0] = 0.5, 0.5000001    # ties go to 0, as ART's rint does
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = straight_through_binarize(xt)
        total = tf.reduce_sum(out * tf.constant(np.arange(x.size, dtype=np.float32).reshape(x.shape)))
    np.testing.assert_array_equal(out.numpy(), build_classical("bit_depth", bits=1)(x))
    assert set(np.unique(out.numpy())) <= {0.0, 1.0}
    np.testing.assert_array_equal(tape.gradient(total, xt).numpy(), np.arange(x.size).reshape(x.shape))


def test_a_classifier_trained_behind_the_binarize_front(data):
    """The trainer deploys f(round(x)); its training attack gets a gradient (BPDA), not zeros."""
    x, y = data
    cfg = AdversarialConfig(method="pgd", eps=0.2, pgd_steps=3, ramp_epochs=0, front="binarize")
    trainer = AdversarialTrainer(tiny_classifier(), cfg)
    trainer.compile(optimizer=keras.optimizers.SGD(0.05))
    xt, yt = tf.constant(x), tf.constant(y, tf.int64)
    np.testing.assert_allclose(trainer(xt).numpy(), trainer.classifier(tf.round(xt)).numpy(), atol=1e-6)
    x_adv = craft(lambda t: trainer(t), xt, yt, 0.2, "pgd", 3, tf.constant([0, 0], tf.int64)).numpy()
    assert np.abs(x_adv - x).max() <= 0.2 + 1e-6
    assert np.abs(x_adv - x).max() > 0.15          # sign steps moved the pixels: the gradient is not zero
    logs = trainer.train_step((xt, yt))
    assert np.isfinite(float(logs["loss"]))
    assert "front" in cfg.to_dict() and "front" not in AdversarialConfig().to_dict()   # old runs resume


def test_front_configs_are_checked():
    with pytest.raises(ValueError, match="Unknown front"):
        AdversarialConfig(front="jpeg")


def test_trades_behind_the_binarize_front_sees_only_rounded_images(data):
    """Both TRADES terms score f(round(.)): with beta 0 the loss is the CE of the rounded clean images,
    and its KL term is zero exactly when the attack cannot change the rounded image (eps 0)."""
    x, y = data
    xt, yt = tf.constant(x), tf.constant(y, tf.int64)
    seed = tf.constant([0, 0], tf.int64)
    clf = tiny_classifier()
    ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yt, clf(tf.round(xt)))).numpy()
    plain = AdversarialTrainer(clf, AdversarialConfig(method="trades", trades_beta=0.0, front="binarize"))
    np.testing.assert_allclose(plain.adversarial_loss(xt, yt, 0.3, seed, training=False)[0].numpy(), ce, rtol=1e-5)
    robust = AdversarialTrainer(clf, AdversarialConfig(method="trades", trades_beta=6.0, front="binarize"))
    np.testing.assert_allclose(robust.adversarial_loss(xt, yt, 0.0, seed, training=False)[0].numpy(), ce, rtol=1e-5)
    assert robust.adversarial_loss(xt, yt, 0.3, seed, training=False)[0].numpy() > ce   # the KL term counts
