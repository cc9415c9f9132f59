"""Search: regularised evolution over update-rule programs, with caches, funnel selection and simplification.

:func:`search` runs a whole campaign from a configuration (``search_spaces/*.toml``);
the parts are usable alone: :mod:`~symopt.search.space` (configuration),
:mod:`~symopt.search.mutation`, :mod:`~symopt.search.dedup` (hash, fingerprint,
cache), :mod:`~symopt.search.evolution` (the algorithm, pure) and
:mod:`~symopt.search.funnel`.
"""

from symopt.search.campaign import Campaign, HallOfFameEntry, search
from symopt.search.space import Config, SearchSpace, load

__all__ = ["Campaign", "Config", "HallOfFameEntry", "SearchSpace", "load", "search"]
