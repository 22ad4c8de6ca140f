"""Chart building for the pages, and the math under it. Functions of polars frames and numpy
arrays (Altair for the charts, no Streamlit), so each is tested directly and reusable from
scripts.

- ``run``: the Run page's charts (episodic return, SB3's training scalars).
- ``compare``: the Compare chart, and its PNG/SVG export.
- ``compare_data``: the table behind the Compare chart (chosen runs and metric, smoothed,
  human-normalised, downsampled, grouped by seed) and its CSV/Parquet export.
- ``smoothing``: TensorBoard's debiased EMA. ``downsample``: LTTB. ``seeds``: seed groups (mean,
  bootstrap band, IQM). ``atari_scores``: Atari human-normalised scores.
"""
