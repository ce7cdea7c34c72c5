"""Benchmarks of agentpty's hot path against the budgets of DESIGN.md decision 7.

Run ``python -m bench``; see ``bench/README.md``.
"""
