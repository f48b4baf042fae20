"""Checkpoint conversion: Hugging Face transformers, fairseq, torchaudio."""
