"""Pure analysis of metric series for the dashboard: smoothing, downsampling, seed groups and
Atari human-normalised scores. numpy and polars only (no Streamlit, no torch), so every
function here is testable and reusable from scripts."""

from dashboard.analysis.atari_scores import (
    REFERENCE_SCORES,
    game_name,
    human_normalized,
    human_normalized_score,
    reference_scores,
)
from dashboard.analysis.downsample import lttb_indices
from dashboard.analysis.seeds import GroupCurve, aggregate_seeds, group_key, iqm
from dashboard.analysis.smoothing import MAX_SMOOTHING, ema_smooth

__all__ = [
    "MAX_SMOOTHING",
    "REFERENCE_SCORES",
    "GroupCurve",
    "aggregate_seeds",
    "ema_smooth",
    "game_name",
    "group_key",
    "human_normalized",
    "human_normalized_score",
    "iqm",
    "lttb_indices",
    "reference_scores",
]
