"""Evaluation: verification metrics, figures and the run report."""
