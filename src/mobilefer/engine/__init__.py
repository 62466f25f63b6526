"""Training, evaluation and metrics."""
