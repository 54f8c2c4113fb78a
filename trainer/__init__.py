"""GRPO training on rm-service rewards (TRL). Filled in by the training-integration work."""
