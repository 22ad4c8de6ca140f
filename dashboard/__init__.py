"""The Streamlit dashboard (``app.py``; run it with ``python -m dashboard.serve``).

- ``app_pages/``: one script per page, registered in ``app.py`` (PAGES).
- ``components/``: widgets more than one page draws, or a page draws as a block (run
  controls, clips, trust box, resources, the config form generated from the schema).
- ``charts/``: chart building (Altair) and the math under it (smoothing, LTTB, seed groups,
  Atari scores); no Streamlit.
- Reads: ``data.py`` (runs, cached by file stamps), ``clip_data.py`` (clips, time-lapses, best
  models, and the requests for new ones). Writes: ``actions.py`` (one request or queue file
  per button). ``durations.py`` estimates how long a run takes; ``fmt.py`` puts numbers and
  states into words; ``presets.py`` holds the New run presets.
- Server side: ``auth.py`` (the LAN rule), ``headers.py`` (anti-framing), ``serve.py`` and
  ``share.py`` (``make run`` / ``make share``), ``runner_launch.py`` and
  ``tensorboard_launcher.py`` (the two processes the dashboard may start).
"""
