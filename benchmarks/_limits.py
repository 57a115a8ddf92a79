"""What the benchmarks share: best-of-N timing and the forward+backward limit of a model.

An L-inf attack step cannot be cheaper than one forward + backward pass of the attacked model
(the gradient of the loss with respect to the input), so each benchmark times that pass, compiled,
on the same batches, beside the attack itself.
"""
from __future__ import annotations

import time


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn()`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def fwd_bwd_limit(model, x, y, batch_size: int, passes: int, repeats: int) -> float:
    """Seconds for ``passes`` compiled forward+backward passes of ``model`` over ``(x, y)`` in
    batches (traced once first, then the best of ``repeats``)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, *x.shape[1:]), tf.float32), tf.TensorSpec([None], tf.int64)])
    def grad(xb, yb):
        with tf.GradientTape() as tape:
            tape.watch(xb)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, model(xb, training=False)))
        return tape.gradient(loss, xb)

    batches = [(tf.constant(x[i:i + batch_size]), tf.constant(y[i:i + batch_size].astype("int64")))
               for i in range(0, len(x), batch_size)]

    def limit():
        for xb, yb in batches:
            for _ in range(passes):
                g = grad(xb, yb)
        g.numpy()

    limit()
    return best_of(limit, repeats)
