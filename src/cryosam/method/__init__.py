"""The algorithm on arrays in memory, one module per stage.

prompts -> :mod:`~cryosam.method.instances` (cross-plane self-prompting, via
:mod:`~cryosam.method.propagate`) -> :mod:`~cryosam.method.queries` -> candidates
(:mod:`~cryosam.method.matching`, :mod:`~cryosam.method.candidates`) -> shape verification
(:mod:`~cryosam.method.verify`) -> the cut (:mod:`~cryosam.method.cut`) -> masks and picks;
:mod:`~cryosam.method.pick` runs the stages in order. Membranes and filaments:
:mod:`~cryosam.method.extended`. Nothing here reads or writes files.
"""
