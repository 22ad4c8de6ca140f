"""Reports and the statistics behind them (issue 17): what a run, a comparison of runs or seed
groups, or a sweep can hand to someone without a dashboard.

Imports ``runstore`` of ours and never torch, SB3 or the trainer: the runner builds reports
on request and the dashboard shows the same numbers (tests/test_layering.py).
"""
