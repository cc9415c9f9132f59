"""The run directory: what a campaign writes, and the readers that check it.

* :mod:`~symopt.storage.durable`: ``DirLock``, ``atomic_write``, ``AppendLog``: one writer, whole files, fsynced;
* :mod:`~symopt.storage.run_log`: the campaign's writers (log, lineage, snapshots, hall of fame);
* :mod:`~symopt.storage.run_dir`: the layout and the readers, which answer bad content with one line.
"""
