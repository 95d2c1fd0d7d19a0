"""Preparing a tomogram: contrast, standardisation, binning, resampling, local filters.

Everything here works on arrays ``(z, y, x)`` and knows nothing of prompts or particles.
"""
