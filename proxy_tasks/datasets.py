"""Offline data for the proxy tasks, loaded once from the files in proxy_tasks/data/.

The files are made by `python -m proxy_tasks.build_data`; only numpy is needed to read them.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np

DATA_DIR = pathlib.Path(__file__).with_name("data")

# Characters: newline, then printable ASCII 32..126. Fixed, so it never depends on the text.
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
VOCAB_SIZE = len(VOCAB)  # 96


@functools.lru_cache(maxsize=None)
def digits() -> dict[str, np.ndarray]:
    """UCI optical digits: x_* uint8 [n, 8, 8] (grey levels 0..16), y_* uint8 [n].

    A fixed split: 1437 training and 360 held-out images.
    """
    with np.load(DATA_DIR / "digits.npz") as f:
        return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}


@functools.lru_cache(maxsize=None)
def text(held_out: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The shipped English text as uint8 token ids in VOCAB: (train, held-out tail)."""
    raw = (DATA_DIR / "text.txt").read_bytes()
    codes = np.frombuffer(raw, dtype=np.uint8)
    if ((codes != 10) & ((codes < 32) | (codes > 126))).any():
        raise ValueError("text.txt must hold printable ASCII and newlines only")
    ids = np.where(codes == 10, 0, codes.astype(np.int64) - 31).astype(np.uint8)
    cut = int(len(ids) * (1.0 - held_out))
    return ids[:cut], ids[cut:]


GRAMMAR_BRACKETS = 6  # pairs of typed brackets: tokens 0..5 open, 6..11 close
GRAMMAR_WORDS = 20  # filler words: tokens 12..31
GRAMMAR_VOCAB_SIZE = 2 * GRAMMAR_BRACKETS + GRAMMAR_WORDS  # 32


@functools.lru_cache(maxsize=None)
def grammar(n_tokens: int = 65_536, held_out: float = 0.1, max_depth: int = 6,
            p_open: float = 0.15, p_close: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic language, generated (seeded) rather than shipped: nested typed brackets with filler words.

    Each token opens a bracket of a random type (probability `p_open`, below `max_depth`), closes the
    innermost open one (`p_close`), or is a word drawn from a sparse distribution of the innermost
    bracket's type. Predicting it takes the stack: the type of a closing bracket and the words' distribution
    depend on tokens arbitrarily far back. Token ids uint8 in 0..GRAMMAR_VOCAB_SIZE-1: (train, held-out tail).
    """
    rng = np.random.default_rng(109)
    cdf = np.cumsum(rng.dirichlet(np.full(GRAMMAR_WORDS, 0.1), GRAMMAR_BRACKETS + 1), axis=1)  # row B: top level
    move, kind, u = rng.random(n_tokens), rng.integers(GRAMMAR_BRACKETS, size=n_tokens), rng.random(n_tokens)
    words = np.minimum([np.searchsorted(c, u) for c in cdf], GRAMMAR_WORDS - 1) + 2 * GRAMMAR_BRACKETS
    words, move, kind = words.T.tolist(), move.tolist(), kind.tolist()  # words[i][context]
    ids, stack = [], []
    for i in range(n_tokens):
        if move[i] < p_open and len(stack) < max_depth:
            stack.append(kind[i])
            ids.append(kind[i])
        elif move[i] < p_open + p_close and stack:
            ids.append(GRAMMAR_BRACKETS + stack.pop())
        else:
            ids.append(words[i][stack[-1] if stack else GRAMMAR_BRACKETS])
    ids = np.asarray(ids, np.uint8)
    cut = int(n_tokens * (1.0 - held_out))
    return ids[:cut], ids[cut:]
