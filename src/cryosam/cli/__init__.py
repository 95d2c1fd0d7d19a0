"""The ``cryosam`` command line: one Typer app (:mod:`cryosam.cli.app`), one module per
command, shared options (:mod:`cryosam.cli.options`) and the entry point
(:func:`cryosam.cli.main.main`). It parses, calls :mod:`cryosam.app` and prints; nothing
below it imports it."""
