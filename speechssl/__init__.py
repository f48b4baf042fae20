"""speechssl: self-supervised speech representations.

Importing the package has no side effects: no global registries, no logging setup, no heavy imports
beyond what a submodule you import needs.
"""

__version__ = "0.1.0"


def load_encoder(path, *, allow_pickle: bool = False):
    """Load an encoder from a speechssl checkpoint (``.safetensors``), a Hugging Face model folder
    (HubertModel / WavLMModel / Wav2Vec2Model or their task models) or a fairseq checkpoint (``.pt``:
    HuBERT, wav2vec 2.0, WavLM, fine-tuned CTC), read without running anything in it
    (:func:`speechssl.convert.fairseq.read_fairseq_checkpoint`); ``allow_pickle=True`` unpickles it
    fully, for a trusted file that holds more than a checkpoint needs. Returns an
    :class:`~speechssl.models.SSLEncoder` in eval mode.
    """
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        from speechssl.convert.hf import encoder_from_hf, is_hf_folder

        if is_hf_folder(path):
            return encoder_from_hf(path)
        if (path / "encoder.safetensors").is_file():
            path = path / "encoder.safetensors"
        else:
            raise ValueError(f"{path}: a folder without config.json (Hugging Face) or encoder.safetensors (speechssl)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: encoder checkpoint not found")
    if path.suffix == ".safetensors":
        from speechssl.checkpoint import load_encoder_checkpoint

        return load_encoder_checkpoint(path)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        from speechssl.convert.fairseq import encoder_from_fairseq

        return encoder_from_fairseq(path, allow_pickle=allow_pickle)
    raise ValueError(f"{path}: unknown checkpoint type '{path.suffix}'; expected .safetensors, a folder, or a fairseq .pt")
