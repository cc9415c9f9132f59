"""The proxy tasks: each builds offline, has float32 params and reproducible batches, and
AdamW at its default learning rate lowers both its training and its held-out loss; each
validation task has a variant that trains at a constant rate."""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import proxy_tasks
from proxy_tasks import datasets
from proxy_tasks.registry import CONSTANT_SUFFIX, ENTRIES
from proxy_tasks.task import FINAL, WARMUP

# The JAX tasks; the constant-rate variants of validation tasks train the same closures (tested apart).
NAMES = proxy_tasks.names("search") + proxy_tasks.names("validation", schedule="cosine")
CONSTANT = proxy_tasks.names("validation", schedule="constant")
TEST_STEPS = 100  # enough to show the decrease on every task; most of the time is compiling
KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module", params=NAMES)
def task(request):
    return proxy_tasks.get(request.param)


def test_task_record(task):
    assert task.tag in ("search", "validation")
    assert task.kind and task.description and task.steps > 0 and task.learning_rate > 0
    assert proxy_tasks.get(task.name) is task  # built once


def test_init_gives_float32_matrices_and_vectors(task):
    shapes = jax.eval_shape(task.init, KEY)
    assert isinstance(shapes, dict) and shapes
    for name, leaf in shapes.items():
        assert leaf.dtype == jnp.float32, name
        assert 1 <= leaf.ndim <= 2, name


@pytest.mark.slow
def test_batch_is_deterministic_and_traceable(task):
    batch = jax.jit(task.batch)  # a traced step, as inside lax.scan
    first, again, later = batch(KEY, 0), batch(KEY, 0), batch(KEY, 1)
    assert jax.tree.structure(first) == jax.tree.structure(later)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    if jax.tree.leaves(first):  # a stochastic task: a new step gives a new batch
        assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(later)))


@pytest.mark.slow
def test_adamw_lowers_train_and_eval_loss(task):
    seed = 0
    losses, final_eval = proxy_tasks.train(task, proxy_tasks.adamw(task), seed=seed, steps=TEST_STEPS)
    assert losses.shape == (TEST_STEPS,) and losses.dtype == np.float32
    assert np.isfinite(losses).all() and np.isfinite(final_eval)
    tenth = TEST_STEPS // 10
    assert losses[-tenth:].mean() < 0.8 * losses[:tenth].mean()
    k_init, _ = jax.random.split(jax.random.PRNGKey(seed))
    initial_eval = float(jax.jit(lambda k: task.eval_loss(task.init(k)))(k_init))
    assert final_eval < 0.8 * initial_eval


@pytest.mark.slow
def test_train_follows_the_documented_key_derivation():
    task, sgd, steps = proxy_tasks.get("quadratic_noisy"), optax.sgd(0.1), 4
    losses, final_eval = proxy_tasks.train(task, sgd, seed=3, steps=steps)

    @jax.jit
    def sgd_step(params, state, batch):
        loss, grads = jax.value_and_grad(task.loss)(params, batch)
        updates, state = sgd.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    k_init, k_data = jax.random.split(jax.random.PRNGKey(3))
    params = task.init(k_init)
    state, expected = sgd.init(params), []
    for i in range(steps):
        params, state, loss = sgd_step(params, state, task.batch(k_data, jnp.int32(i)))
        expected.append(loss)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    np.testing.assert_allclose(final_eval, task.eval_loss(params), rtol=1e-5)


def test_adamw_is_optax_adamw_on_the_task_schedule():
    task = proxy_tasks.get("quadratic_illcond")
    params = {"x": jnp.linspace(-1.0, 1.0, 5)}
    grads = {"x": jnp.linspace(0.5, -0.5, 5)}
    first = float(task.learning_rates()[0])
    ours, theirs = proxy_tasks.adamw(task), optax.adamw(first, weight_decay=task.weight_decay)
    a, _ = ours.update(grads, ours.init(params), params)
    b, _ = theirs.update(grads, theirs.init(params), params)
    np.testing.assert_array_equal(a["x"], b["x"])


def test_schedule_warms_up_then_decays_to_a_tenth_of_the_peak():
    task = proxy_tasks.get("mlp_digits")
    rates = task.learning_rates(factor=2.0, steps=200)
    peak = 2.0 * task.learning_rate
    warm = round(WARMUP * 200)
    assert rates.dtype == np.float32 and rates.shape == (200,)
    np.testing.assert_allclose(rates[:warm], peak * np.arange(1, warm + 1) / warm, rtol=1e-6)
    assert np.all(np.diff(rates[warm - 1:]) <= 0) and rates[-1] == pytest.approx(FINAL * peak, rel=1e-6)
    schedule = task.schedule(factor=2.0, steps=200)
    assert [float(schedule(i)) for i in (0, 57, 199, 500)] == [float(rates[i]) for i in (0, 57, 199, 199)]


def test_names_and_tags():
    search, validation = proxy_tasks.names("search"), proxy_tasks.names("validation")
    toys = proxy_tasks.names("toy")
    assert proxy_tasks.names() == sorted(search + validation + toys) and not set(search) & set(validation)
    assert toys and all(proxy_tasks.tag(t) == "toy" and proxy_tasks.get(t).tag == "toy" for t in toys)
    scheduled = proxy_tasks.names("validation", schedule="cosine")
    assert len(NAMES) >= 17 and len(scheduled) >= 8
    assert len({proxy_tasks.get(n).kind for n in scheduled}) == len(scheduled)  # one model family each
    assert sorted(scheduled + CONSTANT) == validation and CONSTANT == [n + CONSTANT_SUFFIX for n in scheduled]
    assert proxy_tasks.names("search", schedule="constant") == []
    assert {"mlp_digits_large", "lm_char_large"} <= set(search)


def test_the_validation_set_trains_on_data_of_its_own():
    """Besides the three older ones (digits, text, a matrix), no validation task reads the search stage's data."""
    new = set(proxy_tasks.names("validation", schedule="cosine")) - {"cnn_digits", "lstm_char", "matrix_completion"}
    assert len(new) >= 5
    for name in new:
        assert "digits" not in proxy_tasks.get(name).description and "char" not in proxy_tasks.get(name).description


@pytest.mark.parametrize("name", CONSTANT)
def test_a_constant_variant_is_its_task_at_a_constant_rate(name):
    base, task = proxy_tasks.get(name.removesuffix(CONSTANT_SUFFIX)), proxy_tasks.get(name)
    assert (task.lr_schedule, base.lr_schedule, task.tag) == ("constant", "cosine", "validation")
    assert (task.init, task.loss, task.batch, task.eval_loss, task.steps, task.kind) == (
        base.init, base.loss, base.batch, base.eval_loss, base.steps, base.kind)  # the same model and data
    rates = task.learning_rates(factor=3.0)
    assert rates.shape == (task.steps,) and np.all(rates == np.float32(3.0 * task.learning_rate))
    assert [float(task.schedule(2.0)(i)) for i in (0, task.steps // 2, 10 * task.steps)] == [
        pytest.approx(2.0 * task.learning_rate, rel=1e-6)] * 3


@pytest.mark.slow
def test_a_constant_variant_trains_as_optax_adamw_at_a_constant_rate():
    """Its AdamW reference is optax.adamw at the constant peak, on the scheduled task's model and data."""
    task, base, steps = proxy_tasks.get("deep_linear_const"), proxy_tasks.get("deep_linear"), 30
    ours, _ = proxy_tasks.train(task, proxy_tasks.adamw(task, 2.0), seed=1, steps=steps)
    constant = optax.adamw(2.0 * task.learning_rate, weight_decay=task.weight_decay)
    np.testing.assert_array_equal(ours, proxy_tasks.train(base, constant, seed=1, steps=steps)[0])
    scheduled, _ = proxy_tasks.train(base, optax.adamw(base.schedule(2.0 * task.learning_rate / base.learning_rate),
                                                       weight_decay=base.weight_decay), seed=1, steps=steps)
    assert not np.array_equal(ours, scheduled)  # the same peak with warm-up and decay trains otherwise


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tabular_mlp_const", "lm_grammar_const"])
def test_adamw_trains_a_constant_variant(name):
    task = proxy_tasks.get(name)
    losses, final_eval = proxy_tasks.train(task, proxy_tasks.adamw(task), seed=0, steps=TEST_STEPS)
    assert np.isfinite(losses).all() and np.isfinite(final_eval)
    assert losses[-10:].mean() < 0.8 * losses[:10].mean()


def test_learning_rates_reject_an_unknown_schedule():
    with pytest.raises(ValueError, match="constant"):
        proxy_tasks.task.learning_rates(1.0, 10, "linear")
    with pytest.raises(ValueError, match="lr_schedule"):
        dataclasses.replace(proxy_tasks.get("deep_linear"), lr_schedule="step")
    with pytest.raises(ValueError, match="cosine"):
        proxy_tasks.names("validation", schedule="linear")


def test_the_grammar_closes_the_innermost_open_bracket():
    """The bracket grammar's closing tokens match its stack, so its next token depends on the nesting."""
    train, test = datasets.grammar()
    assert train.dtype == np.uint8 and train.max() < datasets.GRAMMAR_VOCAB_SIZE and len(test) > 1000
    b, stack, closes = datasets.GRAMMAR_BRACKETS, [], 0
    for token in train[:5000].tolist():
        if token < b:
            stack.append(token)
        elif token < 2 * b:
            assert stack and stack.pop() == token - b
            closes += 1
    assert closes > 500 and max(np.bincount(train, minlength=datasets.GRAMMAR_VOCAB_SIZE)) < 0.5 * len(train)


def test_unknown_name_lists_known_tasks_and_a_close_match():
    with pytest.raises(ValueError, match="mlp_digits") as error:
        proxy_tasks.get("mlp_digit")
    assert "did you mean 'mlp_digits'" in str(error.value)
    assert all(name in str(error.value) for name in proxy_tasks.names())


def test_bad_tag():
    with pytest.raises(ValueError, match="validation"):
        proxy_tasks.names("train")


def test_data_files_are_small_and_plain():
    data = pathlib.Path(proxy_tasks.__file__).with_name("data")
    assert sum(f.stat().st_size for f in data.iterdir()) < 300_000
    (data / "text.txt").read_bytes().decode("ascii")


def test_the_package_docstring_table_matches_the_registry():
    """The table in proxy_tasks' docstring (python -m proxy_tasks.measure prints it) states each task's record."""
    rows = [line.split() for line in proxy_tasks.__doc__.splitlines()
            if line.startswith("    ") and line.split()[0] in proxy_tasks.names()]
    assert {r[0] for r in rows} == set(proxy_tasks.names()) - set(proxy_tasks.names("toy"))
    for name, tag, kind, params, steps, lr, run_s, compile_s in rows:
        task = proxy_tasks.get(name)
        n = sum(x.size for x in jax.tree.leaves(jax.eval_shape(task.init, jax.random.PRNGKey(0))))
        assert (tag, kind, int(params), int(steps), float(lr)) == (task.tag, task.kind, n, task.steps,
                                                                  task.learning_rate), name
        assert (float(run_s), float(compile_s)) == ENTRIES[name].cost, name  # the measured cost, one figure
