"""Language-model proxy tasks: character level on the English text shipped in proxy_tasks/data/, and
token level on a synthetic bracket grammar (datasets.grammar) for validation.

The first 90% of the tokens trains (random windows, with replacement); eval_loss is the mean
next-token cross-entropy (nats) over fixed, evenly spaced windows of the last 10%.
A model that predicts uniformly over the 96 characters scores log(96) = 4.56.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from proxy_tasks import datasets
from proxy_tasks.layers import (cross_entropy, dense, dense_specs, init_params, layer_norm, layer_norm_specs,
                               sample_rows)
from proxy_tasks.task import Task

V = datasets.VOCAB_SIZE


def _token_batches(train_ids, test_ids, context: int, batch_size: int, n_eval: int = 64):
    """The batch function (token windows int32 [B, context + 1]) and the held-out windows."""
    train = jnp.asarray(train_ids)
    offsets = jnp.arange(context + 1)
    eval_starts = np.linspace(0, len(test_ids) - context - 1, n_eval).astype(np.int64)
    held_out = jnp.asarray(test_ids[eval_starts[:, None] + np.arange(context + 1)], jnp.int32)

    def batch(key, step):
        starts = sample_rows(jax.random.fold_in(key, step), len(train_ids) - context, batch_size)
        return {"tokens": train[starts[:, None] + offsets].astype(jnp.int32)}

    return batch, held_out


def _next_char_loss(apply):
    """Turn `apply(params, inputs [B, T]) -> logits [B, T, V]` into a loss on token windows."""
    return lambda params, tokens: cross_entropy(apply(params, tokens[:, :-1]), tokens[:, 1:])


def _lm_task(name, tag, kind, init, apply, context, batch_size, steps, learning_rate, description,
             corpus=datasets.text):
    """Assemble a next-token task from a model's init and apply, on `corpus()`: (train ids, held-out ids)."""
    batch, held_out = _token_batches(*corpus(), context, batch_size)
    loss = _next_char_loss(apply)
    return Task(
        name=name, tag=tag, kind=kind, steps=steps, learning_rate=learning_rate,
        init=init,
        loss=lambda params, b: loss(params, b["tokens"]),
        batch=batch,
        eval_loss=lambda params: loss(params, held_out),
        description=description,
    )


def _transformer(vocab: int, width: int, layers: int, heads: int, context: int):
    """Decoder-only transformer (pre-LayerNorm, learned positions, 4x GELU MLP, causal attention):
    its param specs and `apply(params, inputs [B, T]) -> logits [B, T, vocab]`."""
    head_dim = width // heads
    mask = jnp.tril(jnp.ones((context, context), bool))
    residual_scale = (2 * layers) ** -0.5
    specs = {"embed": ((vocab, width), 0.1), "pos": ((context, width), 0.1)}
    for i in range(layers):
        specs |= layer_norm_specs(f"h{i}_ln1_", width) | dense_specs(f"h{i}_qkv_", width, 3 * width)
        specs |= dense_specs(f"h{i}_proj_", width, width, residual_scale)
        specs |= layer_norm_specs(f"h{i}_ln2_", width) | dense_specs(f"h{i}_mlp0_", width, 4 * width)
        specs |= dense_specs(f"h{i}_mlp1_", 4 * width, width, residual_scale)
    specs |= layer_norm_specs("ln_f_", width) | dense_specs("out_", width, vocab)

    def attention(params, prefix, x):
        b, t, _ = x.shape
        q, k, v = jnp.split(dense(params, f"{prefix}qkv_", x).reshape(b, t, 3 * heads, head_dim), 3, axis=2)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / head_dim**0.5
        weights = jax.nn.softmax(jnp.where(mask[:t, :t], scores, -1e9), axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, width)
        return dense(params, f"{prefix}proj_", out)

    def apply(params, inputs):
        x = params["embed"][inputs] + params["pos"][: inputs.shape[1]]
        for i in range(layers):
            x = x + attention(params, f"h{i}_", layer_norm(params, f"h{i}_ln1_", x))
            h = jax.nn.gelu(dense(params, f"h{i}_mlp0_", layer_norm(params, f"h{i}_ln2_", x)))
            x = x + dense(params, f"h{i}_mlp1_", h)
        return dense(params, "out_", layer_norm(params, "ln_f_", x))

    return specs, apply


def lm_char(name: str, tag: str, width: int = 32, layers: int = 1, heads: int = 2, context: int = 32,
            batch_size: int = 8, steps: int = 200, learning_rate: float = 5e-3) -> Task:
    """Decoder-only transformer (`_transformer`) predicting the next character of the English text."""
    specs, apply = _transformer(V, width, layers, heads, context)
    description = f"char transformer {layers}x{width}d {heads}h, context {context}, batch {batch_size}"
    return _lm_task(name, tag, "lm", lambda key: init_params(key, specs), apply, context, batch_size,
                    steps, learning_rate, description)


def lm_grammar(name: str, tag: str, width: int = 32, layers: int = 1, heads: int = 2, context: int = 16,
               batch_size: int = 16, steps: int = 100, learning_rate: float = 0.015) -> Task:
    """Decoder-only transformer (`_transformer`) on the synthetic bracket grammar (datasets.grammar): another
    language, vocabulary and shape than lm_char's, where the next token depends on the nesting."""
    specs, apply = _transformer(datasets.GRAMMAR_VOCAB_SIZE, width, layers, heads, context)
    description = f"transformer {layers}x{width}d {heads}h on a bracket grammar, context {context}, batch {batch_size}"
    return _lm_task(name, tag, "transformer", lambda key: init_params(key, specs), apply, context, batch_size,
                    steps, learning_rate, description, corpus=datasets.grammar)


def lstm_char(name: str, tag: str, hidden: int = 64, embed: int = 16, context: int = 32,
              batch_size: int = 16, steps: int = 200, learning_rate: float = 3e-2) -> Task:
    """Single-layer LSTM (forget-gate bias 1) reading character embeddings, softmax output."""
    specs = {"embed": ((V, embed), 1.0)} | dense_specs("lstm_", embed + hidden, 4 * hidden)
    specs |= dense_specs("out_", hidden, V)

    def init(key):
        params = init_params(key, specs)
        params["lstm_b"] = params["lstm_b"].at[hidden:2 * hidden].set(1.0)  # gates i, f, g, o
        return params

    def apply(params, inputs):
        def cell(carry, x):
            h, c = carry
            i, f, g, o = jnp.split(dense(params, "lstm_", jnp.concatenate([x, h], -1)), 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((inputs.shape[0], hidden), jnp.float32)
        xs = jnp.swapaxes(params["embed"][inputs], 0, 1)  # time-major [T, B, embed]
        _, hs = jax.lax.scan(cell, (zeros, zeros), xs)
        return dense(params, "out_", jnp.swapaxes(hs, 0, 1))

    return _lm_task(name, tag, "rnn", init, apply, context, batch_size, steps, learning_rate,
                    f"char LSTM {hidden} hidden, context {context}, batch {batch_size}")
