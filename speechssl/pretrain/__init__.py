"""Pretraining: masking, objectives, utterance mixing, the training loop."""
