"""Scoring a model: the data-parallel evaluator, work-directory reports and plots."""
