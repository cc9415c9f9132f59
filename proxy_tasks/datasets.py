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
