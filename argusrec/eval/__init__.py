"""Evaluation: metric functions and ranking protocols."""
