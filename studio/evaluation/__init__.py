"""Comparing configurations on held-out data: metrics (and, later, evaluation runs)."""
