"""Small neural-network pieces in plain jax.numpy, shared by the model tasks.

Parameters are flat dicts of float32 matrices and vectors; each helper reads the
entries under a name prefix, so models stay one dict deep.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def dense_init(key: jax.Array, prefix: str, n_in: int, n_out: int, scale: float = 1.0) -> dict:
    """LeCun-normal weights `{prefix}w` [n_in, n_out] and zero biases `{prefix}b` [n_out]."""
    w = jax.random.normal(key, (n_in, n_out), jnp.float32) * (scale / n_in**0.5)
    return {f"{prefix}w": w, f"{prefix}b": jnp.zeros((n_out,), jnp.float32)}


def dense(params: dict, prefix: str, x: jax.Array) -> jax.Array:
    """x @ w + b over the last axis."""
    return x @ params[f"{prefix}w"] + params[f"{prefix}b"]


def layer_norm_init(prefix: str, n: int) -> dict:
    """Unit gain `{prefix}g` and zero bias `{prefix}b`."""
    return {f"{prefix}g": jnp.ones((n,), jnp.float32), f"{prefix}b": jnp.zeros((n,), jnp.float32)}


def layer_norm(params: dict, prefix: str, x: jax.Array) -> jax.Array:
    """Normalise the last axis to zero mean and unit variance, then scale and shift."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * params[f"{prefix}g"] + params[f"{prefix}b"]


def conv3x3_init(key: jax.Array, prefix: str, c_in: int, c_out: int) -> dict:
    """A 3x3 convolution kernel stored as the matrix `{prefix}w` [9 * c_in, c_out], and biases."""
    return dense_init(key, prefix, 9 * c_in, c_out)


def conv3x3(params: dict, prefix: str, x: jax.Array, stride: int = 1) -> jax.Array:
    """3x3 'SAME' convolution of NHWC `x`; the kernel is stored as a [9*c_in, c_out] matrix."""
    w = params[f"{prefix}w"]
    kernel = w.reshape(3, 3, x.shape[-1], w.shape[-1])
    y = jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + params[f"{prefix}b"]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), -1).mean()


def sample_rows(key: jax.Array, n_rows: int, batch_size: int) -> jax.Array:
    """Uniform row indices (with replacement) for one minibatch; traceable."""
    return jax.random.randint(key, (batch_size,), 0, n_rows)
