"""Judging results: metrics against ground truth, truth loading, the baseline pickers a user
would otherwise run, and the plain tables benchmarks print."""
