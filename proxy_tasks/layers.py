"""Small neural-network pieces in plain jax.numpy, shared by the model tasks.

Parameters are flat dicts of float32 matrices and vectors. A model declares them as
specs, name -> (shape, std, mean), and `init_params` draws them all from one normal
vector: every separate PRNG call adds about 0.3 s of XLA compile time on CPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Specs = dict  # name -> (shape, std) or (shape, std, mean)


def init_params(key: jax.Array, specs: Specs) -> dict:
    """Float32 params, each `mean + std * N(0, 1)`, from a single `jax.random.normal` draw."""
    drawn = {name: math.prod(s[0]) for name, s in specs.items() if s[1]}
    z = jax.random.normal(key, (sum(drawn.values()),), jnp.float32)
    params, offset = {}, 0
    for name, (shape, std, *mean) in specs.items():
        value = jnp.full(shape, mean[0] if mean else 0.0, jnp.float32)
        if std:
            value = value + std * z[offset:offset + drawn[name]].reshape(shape)
            offset += drawn[name]
        params[name] = value
    return params


def dense_specs(prefix: str, n_in: int, n_out: int, scale: float = 1.0) -> Specs:
    """LeCun-normal weights `{prefix}w` [n_in, n_out] (times `scale`), zero biases `{prefix}b`."""
    return {f"{prefix}w": ((n_in, n_out), scale / math.sqrt(n_in)), f"{prefix}b": ((n_out,), 0.0)}


def dense(params: dict, prefix: str, x: jax.Array) -> jax.Array:
    """x @ w + b over the last axis."""
    return x @ params[f"{prefix}w"] + params[f"{prefix}b"]


def mlp_specs(sizes: tuple[int, ...]) -> Specs:
    """Dense layers l0, l1, ... between consecutive sizes."""
    specs = {}
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        specs |= dense_specs(f"l{i}_", n_in, n_out)
    return specs


def mlp_apply(params: dict, x: jax.Array, n_layers: int, act=jax.nn.relu) -> jax.Array:
    """Dense layers l0, l1, ... with `act` between them, linear output."""
    for i in range(n_layers):
        x = dense(params, f"l{i}_", x)
        if i < n_layers - 1:
            x = act(x)
    return x


def layer_norm_specs(prefix: str, n: int) -> Specs:
    """Unit gain `{prefix}g` and zero bias `{prefix}b`."""
    return {f"{prefix}g": ((n,), 0.0, 1.0), f"{prefix}b": ((n,), 0.0)}


def layer_norm(params: dict, prefix: str, x: jax.Array) -> jax.Array:
    """Normalise the last axis to zero mean and unit variance, then scale and shift."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * params[f"{prefix}g"] + params[f"{prefix}b"]


def conv3x3_specs(prefix: str, c_in: int, c_out: int) -> Specs:
    """A 3x3 kernel stored as the matrix `{prefix}w` [9 * c_in, c_out], rows in (dy, dx, c) order."""
    return dense_specs(prefix, 9 * c_in, c_out)


def conv3x3(params: dict, prefix: str, x: jax.Array, stride: int = 1) -> jax.Array:
    """3x3 convolution of NHWC `x`, zero padding 1, windows centred on pixels 0, stride, 2*stride, ...

    Written as patches @ kernel matrix: on CPU this runs several times faster than
    `lax.conv_general_dilated` at these tiny sizes.
    """
    _, h, w, _ = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = [xp[:, dy:dy + h:stride, dx:dx + w:stride] for dy in range(3) for dx in range(3)]
    return dense(params, prefix, jnp.concatenate(patches, axis=-1))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), -1).mean()


def sample_rows(key: jax.Array, n_rows: int, batch_size: int) -> jax.Array:
    """Row indices for one minibatch, uniform with replacement; traceable.

    Raw bits modulo n_rows (bias below n_rows / 2**32) compile faster than `randint`.
    """
    return (jax.random.bits(key, (batch_size,), jnp.uint32) % n_rows).astype(jnp.int32)
