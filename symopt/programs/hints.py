"""The "did you mean" part of an error message: names close to a misspelt one."""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, candidates: Iterable[str], n: int = 2) -> str:
    """``" (did you mean 'a' or 'b'?)"`` for up to ``n`` of ``candidates`` close to ``name``, or ``""``.

    >>> did_you_mean("sqr", ["square", "sqrt", "sign"])
    " (did you mean 'sqrt' or 'square'?)"
    >>> did_you_mean("xyz", ["square"])
    ''
    """
    close = difflib.get_close_matches(str(name), list(candidates), n=n, cutoff=0.6)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
