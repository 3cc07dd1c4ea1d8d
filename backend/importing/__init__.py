"""Bring your own checkpoints: read user files safely and turn them into runs of the store.

- :mod:`backend.importing.checkpoints`: format detection and safe loading (``torch.load(weights_only=True)``,
  safetensors, TorchScript only when trusted), wrapper and prefix removal, epoch labels from file names.
- :mod:`backend.importing.architecture`: which model a state_dict belongs to, with the number of classes
  and the input size read from the weights, and errors that name the keys that do not fit.
- :mod:`backend.importing.zipsafe`: image-folder zips checked entry by entry before anything is extracted.
- :mod:`backend.jobs.imports`: checkpoints + data set -> a run with snapshots, built in a staging
  folder and published by one rename, so an error never leaves half a run.
"""
