"""Evaluation: reading the model's answers, pairing them with the drawings, and the metrics."""
