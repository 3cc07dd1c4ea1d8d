"""Everything that writes runs, and the one launcher that starts them as processes.

- :mod:`backend.jobs.train`: train or resume a run (the snapshot callbacks hand tables to the store).
- :mod:`backend.jobs.analyse`: analyse a run's snapshots, its network-level measures, rotation and baselines.
- :mod:`backend.jobs.baselines`: c0 and the sharpness baselines from the checkpoints (backend.analysis.baselines).
- :mod:`backend.jobs.imports`: checkpoints + data set -> a run with snapshots, built in a staging folder and
  published by one rename; :mod:`backend.jobs.import_job`: an import with progress for the dashboard.
- :mod:`backend.jobs.sweep_spec`: a sweep file expanded into runs; :mod:`backend.jobs.sweep`: the Ray driver.
- :mod:`backend.jobs.demo`: the demo store's builder.
- :mod:`backend.jobs.launch`: the dashboard's jobs, each its own process that receives a validated config as JSON.
"""
