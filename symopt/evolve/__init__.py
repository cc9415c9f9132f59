"""The search algorithm, with no I/O: regularised evolution over update-rule programs.

* :mod:`~symopt.evolve.mutation`: hero's mutations and symopt's own (accumulate, wrap, constant);
* :mod:`~symopt.evolve.dedup`: the canonical hash, the behaviour fingerprint and the caches;
* :mod:`~symopt.evolve.evolution`: the algorithm, pure: ``propose`` and ``accept``;
* :mod:`~symopt.evolve.steady`: the steady-state loop over any evaluator, and replay.

Nothing here writes a file, reads a clock or talks to a terminal: :mod:`symopt.campaign` drives it and
:mod:`symopt.storage` keeps what it does.
"""
