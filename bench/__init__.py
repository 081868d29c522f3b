"""Benchmarks: figures side by side with a baseline in the same run, reported as ratios, never asserted.

``make bench`` (``python -m bench``) runs each module listed in ``bench.__main__.BENCHMARKS``.
"""
