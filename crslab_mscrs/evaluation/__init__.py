"""Evaluation library: generation metrics, ranking metrics and evaluation protocols."""
