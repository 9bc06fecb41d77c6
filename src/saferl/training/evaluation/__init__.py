"""Evaluation: protocols, statistics, model comparison and reports."""
