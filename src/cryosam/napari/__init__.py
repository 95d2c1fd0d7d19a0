"""napari plugin (``pip install "cryosam[napari]"``): open tomograms, click prompts,
segment one particle or find all like it, filter picks by score, export.

The Qt widget is a thin layer over :mod:`cryosam.napari._core`, which holds the work
and needs no Qt, so it is tested without a display.
"""
