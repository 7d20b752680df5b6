"""Helpers below every other module: argument checks, initialisers, extras.

Nothing here imports another part of the package, so every layer of it
(layers, models, data, training, analysis, export, the command line) can
use them; the import contract in `pyproject.toml` keeps it so.
"""
