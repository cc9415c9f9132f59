"""Proxy tasks on real images: the 8x8 UCI digits (1437 train / 360 held out), offline.

Minibatches are drawn with replacement from the training images, which stay in memory as
uint8 constants; eval_loss is the loss over all 360 held-out images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from proxy_tasks import datasets
from proxy_tasks.layers import (conv3x3, conv3x3_specs, cross_entropy, dense, dense_specs, init_params, mlp_apply,
                               mlp_specs, sample_rows)
from proxy_tasks.task import Task


def _digit_batches(batch_size: int, noise: float = 0.0):
    """The batch function and the held-out (images, labels): images float32 [B, 8, 8] in [0, 1], plus
    Gaussian pixel noise of std ``noise`` on the training batches (augmentation against overfitting)."""
    d = datasets.digits()
    x_train, y_train = jnp.asarray(d["x_train"]), jnp.asarray(d["y_train"])  # uint8
    x_test, y_test = jnp.asarray(d["x_test"], jnp.float32) / 16.0, jnp.asarray(d["y_test"], jnp.int32)

    def batch(key, step):
        key = jax.random.fold_in(key, step)
        idx = sample_rows(key, x_train.shape[0], batch_size)
        x = x_train[idx].astype(jnp.float32) / 16.0
        if noise:
            x = x + noise * jax.random.normal(jax.random.fold_in(key, 1), x.shape)
        return {"x": x, "y": y_train[idx].astype(jnp.int32)}

    return batch, x_test, y_test


def mlp_digits(name: str, tag: str, hidden: tuple[int, ...] = (64,), batch_size: int = 64,
               steps: int = 200, learning_rate: float = 1e-2, noise: float = 0.0) -> Task:
    """ReLU MLP classifier, 64 pixels -> hidden -> 10 classes, softmax cross-entropy."""
    sizes = (64, *hidden, 10)
    batch, x_test, y_test = _digit_batches(batch_size, noise)

    def logits(params, x):
        return mlp_apply(params, x.reshape(x.shape[0], 64), len(sizes) - 1)

    return Task(
        name=name, tag=tag, kind="mlp", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, mlp_specs(sizes)),
        loss=lambda params, b: cross_entropy(logits(params, b["x"]), b["y"]),
        batch=batch,
        eval_loss=lambda params: cross_entropy(logits(params, x_test), y_test),
        description=f"MLP {'-'.join(map(str, sizes))} on 8x8 digits, batch {batch_size}"
                    + (f", pixel noise {noise:g}" if noise else ""),
    )


def cnn_digits(name: str, tag: str, channels: tuple[int, int] = (8, 16), batch_size: int = 32,
               steps: int = 200, learning_rate: float = 1e-2) -> Task:
    """Two 3x3 conv layers (the second with stride 2), ReLU, then a dense softmax layer."""
    c1, c2 = channels
    batch, x_test, y_test = _digit_batches(batch_size)
    specs = conv3x3_specs("conv0_", 1, c1) | conv3x3_specs("conv1_", c1, c2)
    specs |= dense_specs("out_", 4 * 4 * c2, 10)

    def logits(params, x):
        h = jax.nn.relu(conv3x3(params, "conv0_", x[..., None]))
        h = jax.nn.relu(conv3x3(params, "conv1_", h, stride=2))  # [B, 4, 4, c2]
        return dense(params, "out_", h.reshape(h.shape[0], -1))

    return Task(
        name=name, tag=tag, kind="cnn", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, specs),
        loss=lambda params, b: cross_entropy(logits(params, b["x"]), b["y"]),
        batch=batch,
        eval_loss=lambda params: cross_entropy(logits(params, x_test), y_test),
        description=f"CNN conv{c1}-conv{c2}/2-dense on 8x8 digits, batch {batch_size}",
    )


def autoencoder_digits(name: str, tag: str, sizes: tuple[int, ...] = (64, 32, 8, 32, 64),
                       batch_size: int = 64, steps: int = 300, learning_rate: float = 1e-2) -> Task:
    """Tanh MLP autoencoder through a narrow code; mean squared reconstruction error of pixels."""
    batch, x_test, _ = _digit_batches(batch_size)

    def mse(params, x):
        x = x.reshape(x.shape[0], 64)
        return jnp.mean((mlp_apply(params, x, len(sizes) - 1, jnp.tanh) - x) ** 2)

    return Task(
        name=name, tag=tag, kind="autoencoder", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, mlp_specs(sizes)),
        loss=lambda params, b: mse(params, b["x"]),
        batch=batch,
        eval_loss=lambda params: mse(params, x_test),
        description=f"autoencoder {'-'.join(map(str, sizes))} on 8x8 digits, batch {batch_size}",
    )
