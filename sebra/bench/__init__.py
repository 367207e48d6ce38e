"""Benchmark tooling, apart from the method library: nothing under ``sebra.methods``, ``sebra.datasets`` or the
Stage 1/Stage 2 core imports it.

* :mod:`sebra.bench.config`: the benchmark config (LightningCLI's ``data``/``trainer``/``model`` blocks per method,
  the bench-only keys under ``bench:``), loading, checking, building one run's modules.
* :mod:`sebra.bench.run`: one (method, seed) run and its result rows.
* :mod:`sebra.bench.sweep`: methods x seeds into one results file, resumable; rows derived from two runs.
* :mod:`sebra.bench.store`: results files (read, atomic write, merge, lanes) and the ranking table.
* :mod:`sebra.bench.rankers`: reference rankers scored against the true levels (ERM confidence per epoch).
* :mod:`sebra.bench.tables`: Markdown tables, the plot and BENCHMARKS.md blocks.
* :mod:`sebra.bench.family`, :mod:`sebra.bench.family_tables`: the benchmark family sweep and its tables.
* the ``sebra bench`` command itself is :mod:`sebra.cli.bench`, with the other commands.
"""
