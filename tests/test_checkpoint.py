"""Our checkpoint format, load_encoder's dispatch, and the convert verb."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

import speechssl
from speechssl.checkpoint import FORMAT_VERSION, load_encoder_checkpoint, read_metadata, save_encoder
from speechssl.cli import convert
from speechssl.convert.hf import encoder_to_hf
from speechssl.models import build_encoder, preset

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    model = build_encoder(preset("tiny_wavlm", pre_norm=True)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _same_outputs(a, b):
    wavs = torch.randn(2, 9000)
    with torch.no_grad():
        for x, y in zip(a.extract_features(wavs).hidden_states, b.extract_features(wavs).hidden_states):
            assert torch.equal(x, y)


def test_round_trip_and_metadata(encoder, tmp_path):
    path = save_encoder(encoder, tmp_path / "enc.safetensors")
    meta = read_metadata(path)
    assert meta["format"] == "speechssl-encoder" and meta["format_version"] == str(FORMAT_VERSION)
    assert json.loads(meta["config"])["pre_norm"] is True
    loaded = load_encoder_checkpoint(path)
    assert loaded.config == encoder.config and not loaded.training
    _same_outputs(encoder, loaded)


def test_loading_never_unpickles(encoder, tmp_path, monkeypatch):
    save_encoder(encoder, tmp_path / "enc.safetensors")
    encoder_to_hf(encoder, tmp_path / "hf")

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    _same_outputs(encoder, speechssl.load_encoder(tmp_path / "enc.safetensors"))
    _same_outputs(encoder, speechssl.load_encoder(tmp_path / "hf"))


def test_load_encoder_errors(encoder, tmp_path):
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"cfg": {}}))
    with pytest.raises(ValueError, match="model.pt: not a readable PyTorch file .*; expected a fairseq checkpoint"):
        speechssl.load_encoder(tmp_path / "model.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk.safetensors: not a readable safetensors file"):
        speechssl.load_encoder(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a speechssl encoder checkpoint"):
        speechssl.load_encoder(tmp_path / "other.safetensors")
    path = save_encoder(encoder, tmp_path / "enc.safetensors")
    from safetensors.torch import load_file

    meta = read_metadata(path)
    save_file(load_file(str(path)), str(tmp_path / "future.safetensors"), metadata={**meta, "format_version": "99"})
    with pytest.raises(ValueError, match="format version 99 is newer"):
        speechssl.load_encoder(tmp_path / "future.safetensors")
    with pytest.raises(FileNotFoundError):
        speechssl.load_encoder(tmp_path / "nothing.safetensors")
    with pytest.raises(ValueError, match="without config.json"):
        speechssl.load_encoder(tmp_path)


def test_convert_cli_hf_to_speechssl_to_hf(encoder, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    encoder_to_hf(encoder, tmp_path / "hf")
    assert convert.main(["--from", "hf", str(tmp_path / "hf"), str(tmp_path / "enc.safetensors")]) == 0
    assert convert.main(["--from", "speechssl", str(tmp_path / "enc.safetensors"), str(tmp_path / "hf2")]) == 0
    assert "wavlm, 2 layers, width 32" in capsys.readouterr().out
    back = transformers.AutoModel.from_pretrained(tmp_path / "hf2").eval()
    wavs = torch.randn(1, 9000)
    with torch.no_grad():
        ours = encoder.extract_features(wavs).hidden_states
        theirs = back(wavs, output_hidden_states=True).hidden_states
    for x, y in zip(ours, theirs):
        torch.testing.assert_close(y, x, atol=1e-4, rtol=0)
    assert convert.main(["--from", "hf", str(tmp_path / "missing"), str(tmp_path / "x.safetensors")]) == 1
    assert "no config.json" in capsys.readouterr().err


def test_convert_refuses_to_overwrite_and_to_convert_nonfinite_weights(encoder, tmp_path, capsys):
    src = save_encoder(encoder, tmp_path / "enc.safetensors")
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"precious")
    assert convert.main(["--from", "speechssl", str(src), str(out)]) == 1
    assert "out.safetensors: exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert convert.main(["--from", "speechssl", str(src), str(out), "--overwrite"]) == 0
    _same_outputs(encoder, speechssl.load_encoder(out))
    # weights with a NaN, written around save_encoder's own check: converting them is refused too
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    state["mask_embedding"][0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"), metadata=read_metadata(src))
    capsys.readouterr()
    assert convert.main(["--from", "speechssl", str(tmp_path / "nan.safetensors"), str(tmp_path / "hf")]) == 1
    err = capsys.readouterr().err
    assert "nan.safetensors: encoder: refused: 1 tensor(s) hold NaN or infinite values (mask_embedding)" in err
    assert not (tmp_path / "hf").exists()
