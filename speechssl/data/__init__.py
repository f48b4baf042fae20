"""Data layer: audio loading, lhotse manifests, corpus preparation, the synthetic mini corpus,
fairseq interop, samplers and collation."""
