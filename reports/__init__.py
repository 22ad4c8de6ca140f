"""Reports (issue 17): one self-contained HTML file (and its PDF) for a run or a comparison of
runs or seed groups, to hand to someone without a dashboard.

Imports ``runstore`` and ``analysis`` of ours and never torch, SB3, the trainer or Streamlit:
the runner builds reports as a job on request, and ``python -m runner report`` in the
foreground (tests/test_layering.py).
"""
