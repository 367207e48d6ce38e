"""Tests of :mod:`sebra.bench` (a package, so their module names do not clash with tests elsewhere: test_config)."""
