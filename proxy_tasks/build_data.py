"""Regenerate the files in proxy_tasks/data/ (run once by a maintainer, never at run time).

    python -m proxy_tasks.build_data

The files are committed, so the proxy tasks load them offline with numpy alone:

- digits.npz: scikit-learn's bundled copy of the UCI optical digits (1797 8x8 images,
  grey levels 0..16, BSD-3 / CC-BY 4.0), as uint8, split into a fixed train and test set.
- text.txt: about 64 KB of English prose taken from the docstrings of a fixed list of
  Python standard-library modules (PSF licence), reduced to printable ASCII. It is
  generated once and shipped as a file because docstrings change between Python versions.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re

import numpy as np

DATA_DIR = pathlib.Path(__file__).with_name("data")
DIGITS_TEST = 360  # held-out images (20%); the rest are for training
TEXT_BYTES = 64_000
TEXT_MODULES = (
    "textwrap", "string", "collections", "functools", "itertools", "heapq", "bisect",
    "statistics", "fractions", "decimal", "random", "datetime", "calendar", "json",
    "csv", "pathlib", "shutil", "tempfile", "difflib", "logging", "argparse",
    "contextlib", "dataclasses", "enum", "threading", "queue", "subprocess", "zipfile",
)


def build_digits(path: pathlib.Path = DATA_DIR / "digits.npz") -> None:
    """Save the digits as uint8 with a seeded random train/test split."""
    from sklearn.datasets import load_digits  # build-time only

    digits = load_digits()
    images = digits.images.astype(np.uint8)  # [1797, 8, 8], values 0..16
    labels = digits.target.astype(np.uint8)
    order = np.random.RandomState(0).permutation(len(labels))
    test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
    np.savez_compressed(
        path,
        x_train=images[train], y_train=labels[train],
        x_test=images[test], y_test=labels[test],
    )


def _docstrings(module_name: str):
    """Yield the module docstring, then those of its public functions and classes by name."""
    module = importlib.import_module(module_name)
    yield inspect.getdoc(module) or ""
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield inspect.getdoc(obj) or ""


def _prose(doc: str) -> str:
    """Keep the prose lines of a docstring: no doctest lines, ASCII only, one space runs."""
    lines = [ln for ln in doc.splitlines() if not ln.lstrip().startswith((">>>", "..."))]
    text = "\n".join(lines).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\n -~]", "", text)
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def build_text(path: pathlib.Path = DATA_DIR / "text.txt") -> None:
    """Concatenate prose docstrings until TEXT_BYTES and save them as a plain text file."""
    parts, size = [], 0
    for module_name in TEXT_MODULES:
        for doc in _docstrings(module_name):
            doc = _prose(doc)
            if len(doc) < 80:
                continue
            parts.append(doc)
            size += len(doc) + 2
            if size >= TEXT_BYTES:
                path.write_text("\n\n".join(parts)[:TEXT_BYTES] + "\n", encoding="ascii")
                return
    raise RuntimeError(f"only {size} bytes of docstrings in {TEXT_MODULES}")


if __name__ == "__main__":
    DATA_DIR.mkdir(exist_ok=True)
    build_digits()
    build_text()
    for f in sorted(DATA_DIR.iterdir()):
        print(f"{f.name}: {f.stat().st_size} bytes")
