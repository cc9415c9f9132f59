"""Synthetic proxy tasks: classic optimisation test problems with known structure, and held-out
model families (tabular MLP, linear and deep linear regression, autoencoder) on synthetic data.

The problem constants (curvatures, rotations, targets, data) are fixed by a numpy seed,
so every build of a task is the same problem; the PRNG key given to `init` only picks the
starting point (and, for the streaming tasks, the samples of each step). Each factory
returns a `Task`; the registry gives it its name and tag.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from proxy_tasks.layers import cross_entropy, init_params, mlp_apply, mlp_specs, sample_rows
from proxy_tasks.task import Task


def _no_batch(key: jax.Array, step: jax.Array) -> dict:
    """The batch of a deterministic objective: nothing."""
    return {}


def _rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A random orthogonal matrix (QR of a Gaussian matrix, sign-corrected)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def quadratic_illcond(name: str, tag: str, dim: int = 48, condition: float = 1e3, steps: int = 200,
                      learning_rate: float = 0.3) -> Task:
    """f(x) = 1/2 (x - x*)^T A (x - x*), A = Q diag(l) Q^T, l log-spaced over `condition`.

    Deterministic: no batch noise. The minimum is 0, so eval_loss is the optimality gap.
    """
    rng = np.random.default_rng(101)
    curv = np.logspace(0.0, -np.log10(condition), dim)
    q = _rotation(rng, dim)
    a = jnp.asarray((q * curv) @ q.T, jnp.float32)
    x_star = jnp.asarray(rng.standard_normal(dim), jnp.float32)

    def objective(params):
        d = params["x"] - x_star
        return 0.5 * d @ (a @ d)

    return Task(
        name=name, tag=tag, kind="quadratic", steps=steps, learning_rate=learning_rate,
        init=lambda key: {"x": jax.random.normal(key, (dim,), jnp.float32)},
        loss=lambda params, batch: objective(params),
        batch=_no_batch,
        eval_loss=objective,
        description=f"rotated quadratic, dim {dim}, condition number {condition:g}",
    )


def quadratic_noisy(name: str, tag: str, dim: int = 32, condition: float = 1e2, noise: float = 1.0,
                    steps: int = 200, learning_rate: float = 0.05) -> Task:
    """Diagonal quadratic whose target is jittered each step: 1/2 sum_i l_i (x_i - x*_i - noise*xi_i)^2.

    The gradient noise l_i * noise * xi_i (xi ~ N(0, 1), fresh per step) grows with the curvature,
    as in a minibatch; eval_loss is the noise-free gap 1/2 sum_i l_i (x_i - x*_i)^2.
    """
    rng = np.random.default_rng(102)
    curv = jnp.asarray(np.logspace(0.0, -np.log10(condition), dim), jnp.float32)
    x_star = jnp.asarray(rng.standard_normal(dim), jnp.float32)

    def loss(params, batch):
        d = params["x"] - x_star - noise * batch["xi"]
        return 0.5 * jnp.sum(curv * d * d)

    return Task(
        name=name, tag=tag, kind="quadratic", steps=steps, learning_rate=learning_rate,
        init=lambda key: {"x": jax.random.normal(key, (dim,), jnp.float32)},
        loss=loss,
        batch=lambda key, step: {"xi": jax.random.normal(jax.random.fold_in(key, step), (dim,), jnp.float32)},
        eval_loss=lambda params: loss(params, {"xi": jnp.zeros((dim,), jnp.float32)}),
        description=f"diagonal quadratic with curvature-scaled gradient noise, dim {dim}",
    )


def rosenbrock(name: str, tag: str, dim: int = 8, steps: int = 300, learning_rate: float = 0.1) -> Task:
    """Chained Rosenbrock, mean over the dim-1 links of 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2.

    Minimum 0 at x = 1; starts uniform in [-2, 2]^dim. Deterministic.
    """

    def objective(params):
        x = params["x"]
        return jnp.mean(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return Task(
        name=name, tag=tag, kind="rosenbrock", steps=steps, learning_rate=learning_rate,
        init=lambda key: {"x": jax.random.uniform(key, (dim,), jnp.float32, -2.0, 2.0)},
        loss=lambda params, batch: objective(params),
        batch=_no_batch,
        eval_loss=objective,
        description=f"chained Rosenbrock valley, dim {dim}",
    )


def logreg_synthetic(name: str, tag: str, dim: int = 32, n_train: int = 2048, n_test: int = 1024,
                     batch_size: int = 64, steps: int = 200, learning_rate: float = 0.02) -> Task:
    """Binary logistic regression on Gaussian features with scales from 0.1 to 10.

    Labels are drawn from a logistic teacher, so the Bayes loss is well above 0; the badly
    scaled features make the problem ill-conditioned. eval_loss: log loss on the test set.
    """
    rng = np.random.default_rng(103)
    scale = np.logspace(-1.0, 1.0, dim)
    x = rng.standard_normal((n_train + n_test, dim)) * scale
    logit = (x / scale) @ rng.standard_normal(dim) * (3.0 / np.sqrt(dim))
    y = (rng.random(n_train + n_test) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    x_train, x_test = jnp.asarray(x[:n_train], jnp.float32), jnp.asarray(x[n_train:], jnp.float32)
    y_train, y_test = jnp.asarray(y[:n_train]), jnp.asarray(y[n_train:])

    def log_loss(params, xs, ys):
        z = xs @ params["w"] + params["b"][0]
        return jnp.mean(jnp.logaddexp(0.0, z) - ys * z)

    def batch(key, step):
        idx = sample_rows(jax.random.fold_in(key, step), n_train, batch_size)
        return {"x": x_train[idx], "y": y_train[idx]}

    return Task(
        name=name, tag=tag, kind="logistic", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, {"w": ((dim,), 0.01), "b": ((1,), 0.0)}),
        loss=lambda params, b: log_loss(params, b["x"], b["y"]),
        batch=batch,
        eval_loss=lambda params: log_loss(params, x_test, y_test),
        description=f"logistic regression, {dim} badly scaled features, batch {batch_size}",
    )


def matrix_completion(name: str, tag: str, size: int = 48, true_rank: int = 4, rank: int = 8,
                      observed: float = 0.5, batch_size: int = 128, steps: int = 300,
                      learning_rate: float = 0.03) -> Task:
    """Fit U V^T to a noisy rank-`true_rank` matrix from a fraction of its entries.

    Non-convex with a saddle at 0 (the init is small), over-parameterised (rank > true_rank).
    Trains on minibatches of the observed entries; eval_loss is the mean squared error on
    all the other entries.
    """
    rng = np.random.default_rng(104)
    target = rng.standard_normal((size, true_rank)) @ rng.standard_normal((true_rank, size))
    target = target / np.sqrt(true_rank) + 0.1 * rng.standard_normal((size, size))
    cells = rng.permutation(size * size)
    n_obs = int(observed * size * size)
    flat = jnp.asarray(target.ravel(), jnp.float32)
    train_cells, test_cells = jnp.asarray(cells[:n_obs], jnp.int32), jnp.asarray(cells[n_obs:], jnp.int32)

    def mse(params, cells_):
        rows, cols = cells_ // size, cells_ % size
        pred = jnp.sum(params["u"][rows] * params["v"][cols], axis=-1)
        return jnp.mean((pred - flat[cells_]) ** 2)

    def batch(key, step):
        return {"cells": train_cells[sample_rows(jax.random.fold_in(key, step), n_obs, batch_size)]}

    return Task(
        name=name, tag=tag, kind="factorization", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, {"u": ((size, rank), 0.1), "v": ((size, rank), 0.1)}),
        loss=lambda params, b: mse(params, b["cells"]),
        batch=batch,
        eval_loss=lambda params: mse(params, test_cells),
        description=f"rank-{rank} completion of a {size}x{size} rank-{true_rank} matrix",
    )


def tabular_mlp(name: str, tag: str, features: int = 32, informative: int = 12, classes: int = 4,
                hidden: tuple[int, ...] = (64, 64), n_train: int = 4096, n_test: int = 1024, batch_size: int = 64,
                sharpness: float = 8.0, steps: int = 200, learning_rate: float = 0.04) -> Task:
    """ReLU MLP classifier on synthetic tabular data, as tables come: raw columns on scales 0.1 .. 10 with
    offsets, only `informative` of them related to the label (through a random tanh teacher network),
    labels drawn from the teacher's softmax (so the Bayes loss is above 0). eval_loss: test cross-entropy."""
    rng = np.random.default_rng(105)
    n = n_train + n_test
    z = rng.standard_normal((n, features))
    teacher = np.tanh(z[:, :informative] @ rng.standard_normal((informative, 32)) / np.sqrt(informative))
    logits = teacher @ rng.standard_normal((32, classes)) * (sharpness / np.sqrt(32))
    p = np.exp(logits - logits.max(1, keepdims=True))
    y = np.minimum((rng.random((n, 1)) > np.cumsum(p / p.sum(1, keepdims=True), 1)).sum(1), classes - 1)
    x = z * np.logspace(-1.0, 1.0, features)[rng.permutation(features)] + rng.normal(0.0, 2.0, features)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    sizes = (features, *hidden, classes)

    def batch(key, step):
        idx = sample_rows(jax.random.fold_in(key, step), n_train, batch_size)
        return {"x": x_train[idx], "y": y_train[idx]}

    return Task(
        name=name, tag=tag, kind="tabular", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, mlp_specs(sizes)),
        loss=lambda params, b: cross_entropy(mlp_apply(params, b["x"], len(sizes) - 1), b["y"]),
        batch=batch,
        eval_loss=lambda params: cross_entropy(mlp_apply(params, x_test, len(sizes) - 1), y_test),
        description=f"MLP {'-'.join(map(str, sizes))} on synthetic tabular data ({informative} of {features} "
                    f"columns informative, scales 0.1..10), batch {batch_size}",
    )


def linreg_illcond(name: str, tag: str, features: int = 64, outputs: int = 32, condition: float = 1e3,
                   noise: float = 0.5, batch_size: int = 64, steps: int = 200, learning_rate: float = 0.3) -> Task:
    """Multi-output linear regression y = x W* + b* + noise on fresh samples of a rotated, ill-conditioned
    Gaussian (covariance eigenvalues log-spaced over `condition`). eval_loss: the exact excess risk
    E|x (W - W*) + b - b*|^2 / outputs (noise-free, minimum 0)."""
    rng = np.random.default_rng(106)
    eig = np.logspace(0.0, -np.log10(condition), features)
    q = _rotation(rng, features)
    root = jnp.asarray((q * np.sqrt(eig)) @ q.T, jnp.float32)  # x = z @ root has covariance q diag(eig) q^T
    cov = jnp.asarray((q * eig) @ q.T, jnp.float32)
    w_star = jnp.asarray(rng.standard_normal((features, outputs)), jnp.float32)
    b_star = jnp.asarray(rng.standard_normal(outputs), jnp.float32)

    def loss(params, b):
        return 0.5 * jnp.mean(jnp.sum((b["x"] @ params["w"] + params["b"] - b["y"]) ** 2, -1))

    def batch(key, step):
        z = jax.random.normal(jax.random.fold_in(key, step), (batch_size, features + outputs), jnp.float32)
        x = z[:, :features] @ root
        return {"x": x, "y": x @ w_star + b_star + noise * z[:, features:]}

    def excess_risk(params):
        d, db = params["w"] - w_star, params["b"] - b_star
        return (jnp.sum(d * (cov @ d)) + jnp.sum(db * db)) / outputs

    return Task(
        name=name, tag=tag, kind="regression", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, {"w": ((features, outputs), features ** -0.5), "b": ((outputs,), 0.0)}),
        loss=loss,
        batch=batch,
        eval_loss=excess_risk,
        description=f"linear regression {features}->{outputs}, rotated covariance of condition number "
                    f"{condition:g}, batch {batch_size}",
    )


def deep_linear(name: str, tag: str, dim: int = 32, hidden: int = 64, depth: int = 4, noise: float = 0.1,
                spectrum: tuple[float, float] = (10.0, 0.01), init_scale: float = 0.5, batch_size: int = 64,
                steps: int = 100, learning_rate: float = 0.04) -> Task:
    """Deep linear regression: fit y = x T + noise (x ~ N(0, I), T with singular values log-spaced 3 .. 0.03)
    with the product W_0 W_1 ... of `depth` matrices, dim -> hidden -> ... -> dim. Non-convex; the factors
    must agree on each direction. eval_loss: the exact excess risk |W_0 ... - T|_F^2 / dim."""
    rng = np.random.default_rng(107)
    t = (_rotation(rng, dim) * np.geomspace(*spectrum, dim)) @ _rotation(rng, dim)
    target = jnp.asarray(t, jnp.float32)
    sizes = (dim, *[hidden] * (depth - 1), dim)
    specs = {f"w{i}": ((a, b), init_scale * a ** -0.5) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))}

    def product(params):
        m = params["w0"]
        for i in range(1, depth):
            m = m @ params[f"w{i}"]
        return m

    def loss(params, b):
        return 0.5 * jnp.mean(jnp.sum((b["x"] @ product(params) - b["y"]) ** 2, -1))

    def batch(key, step):
        z = jax.random.normal(jax.random.fold_in(key, step), (batch_size, 2 * dim), jnp.float32)
        return {"x": z[:, :dim], "y": z[:, :dim] @ target + noise * z[:, dim:]}

    return Task(
        name=name, tag=tag, kind="deep_linear", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, specs),
        loss=loss,
        batch=batch,
        eval_loss=lambda params: jnp.sum((product(params) - target) ** 2) / dim,
        description=f"deep linear regression, product of {depth} matrices {'-'.join(map(str, sizes))}, "
                    f"batch {batch_size}",
    )


def autoencoder_manifold(name: str, tag: str, dim: int = 64, latent: int = 8,
                         sizes: tuple[int, ...] = (64, 64, 16, 64, 64), noise: float = 0.05, n_test: int = 512,
                         batch_size: int = 64, steps: int = 300, learning_rate: float = 0.03) -> Task:
    """Tanh MLP autoencoder on fresh samples of a curved `latent`-dimensional manifold in `dim` dimensions,
    x = tanh(z A) + noise (z ~ N(0, I)): no digits. eval_loss: reconstruction MSE on a fixed test set."""
    rng = np.random.default_rng(108)
    mix = rng.standard_normal((latent, dim)) * (1.5 / np.sqrt(latent))
    z_test = rng.standard_normal((n_test, latent + dim))
    x_test = jnp.asarray(np.tanh(z_test[:, :latent] @ mix) + noise * z_test[:, latent:], jnp.float32)
    mix = jnp.asarray(mix, jnp.float32)

    def mse(params, x):
        return jnp.mean((mlp_apply(params, x, len(sizes) - 1, jnp.tanh) - x) ** 2)

    def batch(key, step):
        z = jax.random.normal(jax.random.fold_in(key, step), (batch_size, latent + dim), jnp.float32)
        return {"x": jnp.tanh(z[:, :latent] @ mix) + noise * z[:, latent:]}

    return Task(
        name=name, tag=tag, kind="autoencoder", steps=steps, learning_rate=learning_rate,
        init=lambda key: init_params(key, mlp_specs(sizes)),
        loss=lambda params, b: mse(params, b["x"]),
        batch=batch,
        eval_loss=lambda params: mse(params, x_test),
        description=f"autoencoder {'-'.join(map(str, sizes))} on a {latent}-d tanh manifold in {dim}-d, "
                    f"batch {batch_size}",
    )
