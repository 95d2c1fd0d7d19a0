"""One tomogram in, one output set out: the functions every front-end calls.

:func:`cryosam.app.pick.pick` and :func:`cryosam.app.segment.segment` are the library's
entry points (``cryosam.pick``, ``cryosam.segment``); ``batch`` and ``copick`` run them over
many tomograms; :mod:`cryosam.app.record` is what every run writes to ``run.json``.
Nothing here prints: progress goes to a callback, warnings come back with the result.
"""
