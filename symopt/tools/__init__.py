"""The tools behind the commands that read a run or shorten a program.

* :mod:`~symopt.tools.inspect_run`: ``symopt inspect``'s table;
* :mod:`~symopt.tools.compare`: ``symopt compare``, programs side by side at their best rates;
* :mod:`~symopt.tools.report`: ``symopt report``'s plots;
* :mod:`~symopt.tools.derive`: ``symopt derive``, a program shortened by steps checked by training.
"""
