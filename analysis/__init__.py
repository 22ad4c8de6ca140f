"""The numbers and charts behind the dashboard and the reports: pure functions of polars frames
and numpy arrays (Altair for the charts, no Streamlit), so each is tested directly, and a page
and a report of the same runs show the same figures.

- ``stats``: what RL papers report (rliable's methods): IQM, mean and median with
  stratified-bootstrap intervals, the probability of improvement, Welch's t-test and the
  Mann-Whitney U test.
- ``run_charts``: a run's charts (episodic return, SB3's training scalars).
- ``compare_charts``: the Compare chart, and its PNG/SVG export.
- ``compare_data``: the table behind the Compare chart (chosen runs and metric, smoothed,
  human-normalised, downsampled, grouped by seed) and its CSV/Parquet export.
- ``group_stats``: final scores by group and one group against another. ``config_diff``: the
  keys where runs' configs differ. ``sweep_charts``: a sweep's history, parallel coordinates and
  importances.
- ``smoothing``: TensorBoard's debiased EMA. ``downsample``: LTTB. ``seeds``: seed groups (mean,
  bootstrap band, IQM). ``atari_scores``: Atari human-normalised scores.

Imports ``runstore`` of ours and nothing else: no Streamlit, torch or SB3
(tests/test_layering.py).
"""
