"""A task of your own for symopt, in plain JAX: a small tanh MLP fitting a noisy sine.

`symopt search examples/sine.toml`, run from examples/, names these by import path: "sine_task:sine_mlp".
"""

import jax
import jax.numpy as jnp
import numpy as np

from proxy_tasks import Task


def sine_mlp(hidden: int = 16, freq: float = 3.0, steps: int = 200) -> Task:
    """Fit y = sin(freq x) + noise from 256 points, 32 a step; the eval loss is on a clean grid."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 1)).astype(np.float32)
    y = np.sin(freq * x) + 0.1 * rng.normal(size=x.shape).astype(np.float32)
    x, y = jnp.asarray(x), jnp.asarray(y)
    x_eval = jnp.linspace(-1, 1, 64)[:, None]
    y_eval = jnp.sin(freq * x_eval)

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"w1": jax.random.normal(k1, (1, hidden)), "b1": jnp.zeros(hidden),
                "w2": jax.random.normal(k2, (hidden, 1)) / np.sqrt(hidden), "b2": jnp.zeros(1)}

    def loss(params, batch):
        x, y = batch
        pred = jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
        return jnp.mean((pred - y) ** 2)

    def batch(key, step):
        i = jax.random.randint(jax.random.fold_in(key, step), (32,), 0, x.shape[0])
        return x[i], y[i]

    return Task(name="sine_mlp", tag="search", init=init, loss=loss, batch=batch,
                eval_loss=lambda params: loss(params, (x_eval, y_eval)), steps=steps, learning_rate=0.01)


def sine_mlp_wide() -> Task:
    """The funnel's second stage: a wider net, longer."""
    return sine_mlp(hidden=64, steps=400)


def sine_mlp_fast() -> Task:
    """Held out for validation: a higher frequency."""
    return sine_mlp(freq=6.0, steps=300)
