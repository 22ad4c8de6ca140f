"""Journey videos: "AI learns to play <game>", composed from a run's record (issue 18).

``story`` picks the chapters from the run's clips and scores, ``plan`` gives every section
its frames so the length asked for is met, ``footage`` records more gameplay from
checkpoints when the clips on disk are too short, ``frames`` draws cards, the learning-curve
panel and the 2x2 grid, ``compose`` streams it all into the encoder (``encode``), and
``texts`` and ``thumbnail`` write the companions. ``python -m journey RUN_DIR`` is the media
job the runner starts for a ``journey`` request. No torch here: recording more footage is a
``python -m training.record`` subprocess.
"""
