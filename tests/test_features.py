"""Frame features: Kaldi MFCC + deltas, encoder layer features, streaming, sharded dumps, bad audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording

from speechssl.checkpoint import save_encoder
from speechssl.cli.main import main
from speechssl.data.manifest import load_cuts, save_cuts
from speechssl.features.layer import LayerExtractor, encoder_fingerprint
from speechssl.features.mfcc import MfccExtractor, mfcc_39, mfcc_num_frames
from speechssl.features.stream import ComputedFeatures, DumpedFeatures, dump_features, parse_shard, shard_cuts
from speechssl.models import build_encoder, preset

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases


def _wav(seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 3 * t)) * t) + 0.02 * rng.standard_normal(t.size)
    return torch.from_numpy(x.astype(np.float32))


def _deltas_by_definition(x: np.ndarray, n: int = 2) -> np.ndarray:
    """Kaldi's delta: sum_k k (c[t+k] - c[t-k]) / (2 sum_k k^2), edges repeated. x: (T, D)."""
    pad = np.concatenate([np.repeat(x[:1], n, 0), x, np.repeat(x[-1:], n, 0)])
    out = sum(k * (pad[n + k : n + k + len(x)] - pad[n - k : n - k + len(x)]) for k in range(1, n + 1))
    return out / (2 * sum(k * k for k in range(1, n + 1)))


def test_mfcc_shape_frames_and_deltas():
    from torchaudio.compliance.kaldi import mfcc

    wav = _wav(1.234)
    feats = mfcc_39(wav)
    assert feats.shape == (mfcc_num_frames(wav.numel()), 39) == (1 + (wav.numel() - 400) // 160, 39)
    static = mfcc(wav[None], sample_frequency=16000, use_energy=False).numpy()
    np.testing.assert_allclose(feats[:, :13].numpy(), static, rtol=1e-5, atol=1e-5)
    d = _deltas_by_definition(static)
    np.testing.assert_allclose(feats[:, 13:26].numpy(), d, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(feats[:, 26:].numpy(), _deltas_by_definition(d), rtol=1e-4, atol=1e-4)
    assert mfcc_num_frames(399) == 0 and mfcc_num_frames(400) == 1 and mfcc_num_frames(559) == 1 and mfcc_num_frames(560) == 2


def test_mfcc_padded_batch_equals_items_alone():
    wavs = [_wav(1.0, 0), _wav(0.6, 1), _wav(0.83, 2)]
    lens = torch.tensor([w.numel() for w in wavs])
    batch = torch.zeros(3, int(lens.max()))
    for i, w in enumerate(wavs):
        batch[i, : w.numel()] = w
    out = MfccExtractor()(batch, lens)
    for w, f in zip(wavs, out):
        torch.testing.assert_close(f, mfcc_39(w))


def test_layer_features_equal_the_encoder_and_stop_early():
    torch.manual_seed(0)
    enc = build_encoder(preset("tiny_hubert")).eval()
    wavs = [_wav(1.0, 3), _wav(0.7, 4)]
    lens = torch.tensor([w.numel() for w in wavs])
    batch = torch.zeros(2, int(lens.max()))
    for i, w in enumerate(wavs):
        batch[i, : w.numel()] = w
    ex = LayerExtractor(enc, 1)
    assert ex.spec.dim == enc.hidden_size and ex.spec.frame_rate == 50.0 and ex.spec.layer == 1
    feats = ex(batch, lens)
    with torch.no_grad():
        full = enc.extract_features(batch, lens)
        short = enc.extract_features(batch, lens, output_layer=1)
    assert len(short.hidden_states) == 2
    for a, b in zip(short.hidden_states, full.hidden_states[:2]):
        torch.testing.assert_close(a, b)
    for i, w in enumerate(wavs):  # each item as computed alone
        with torch.no_grad():
            alone = enc.extract_features(w[None]).hidden_states[1][0]
        torch.testing.assert_close(feats[i], alone, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="layer must be within 0..2"):
        LayerExtractor(enc, 3)


def test_encoder_fingerprint_follows_the_weights(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder(preset("tiny_hubert"))
    save_encoder(enc, tmp_path / "a.safetensors")
    from speechssl import load_encoder

    assert encoder_fingerprint(load_encoder(tmp_path / "a.safetensors")) == encoder_fingerprint(enc)
    with torch.no_grad():
        next(enc.parameters()).view(-1)[0] += 1e-3
    assert encoder_fingerprint(load_encoder(tmp_path / "a.safetensors")) != encoder_fingerprint(enc)


def test_parse_shard_and_shard_cuts(mini_corpus):
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "1", "a/b"):
        with pytest.raises(ValueError, match="i/n"):
            parse_shard(bad)
    cuts = load_cuts(mini_corpus / "cuts_dev.jsonl.gz")
    parts = [list(shard_cuts(cuts, i, 3).ids) for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(cuts.ids) and all(parts)


def test_computed_dumped_and_sharded_features_agree(mini_corpus, tmp_path):
    manifest = mini_corpus / "cuts_dev.jsonl.gz"
    cuts = load_cuts(manifest)
    direct = {cid: f for cid, f in ComputedFeatures(cuts, MfccExtractor(), str(manifest), max_duration=20.0, progress=False)}
    assert set(direct) == set(cuts.ids)
    for cut in cuts:
        assert direct[cut.id].shape == (mfcc_num_frames(cut.num_samples), 39)
    for i in (1, 2):
        src = ComputedFeatures(shard_cuts(cuts, i, 2), MfccExtractor(), str(manifest), progress=False)
        dump_features(src, tmp_path / "dev", i, 2)
    back = DumpedFeatures(tmp_path / "dev", progress=False)
    assert back.spec == MfccExtractor().spec and back.manifest == str(manifest)
    got = dict(iter(back))
    assert set(got) == set(direct)
    for cid, f in got.items():
        torch.testing.assert_close(f, direct[cid])
    # a missing shard is named, not silently ignored
    (tmp_path / "dev" / "shard-2-of-2.json").unlink()
    with pytest.raises(ValueError, match=r"shards \[2\] of 2 are missing"):
        DumpedFeatures(tmp_path / "dev")


def test_features_cli_shards_resume_and_refuse_other_features(mini_corpus, tmp_path, capsys):
    out = tmp_path / "feats"
    manifest = str(mini_corpus / "cuts_dev.jsonl.gz")
    for i in (1, 2):
        assert main(["features", "--kind", "mfcc", manifest, str(out), "--shard", f"{i}/2", "-q"]) == 0
    meta = json.loads((out / "dev" / "shard-1-of-2.json").read_text())
    assert meta["feature"]["kind"] == "mfcc" and meta["cuts"] == 10 and meta["dtype"] == "float32"
    before = (out / "dev" / "shard-1-of-2.bin").stat().st_mtime_ns
    assert main(["features", "--kind", "mfcc", manifest, str(out), "--shard", "1/2", "-q"]) == 0
    assert "finished, skipped" in capsys.readouterr().out
    assert (out / "dev" / "shard-1-of-2.bin").stat().st_mtime_ns == before
    torch.manual_seed(0)
    save_encoder(build_encoder(preset("tiny_hubert")), tmp_path / "enc.safetensors")
    argv = ["features", "--encoder", str(tmp_path / "enc.safetensors"), "--layer", "1", manifest, str(out), "--shard", "1/2"]
    assert main(argv) == 1
    assert "a finished shard of other features" in capsys.readouterr().err
    assert main(["features", manifest, str(out)]) == 1
    assert "--kind mfcc" in capsys.readouterr().err


def test_unreadable_audio_is_reported_and_skipped(tmp_path, capsys):
    recs = []
    for i in range(3):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, _wav(0.5 + 0.1 * i, i).numpy(), 16000)
        recs.append(Recording.from_file(path))
    (tmp_path / "u1.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)  # corrupted after the manifest was made
    manifest = save_cuts(CutSet.from_cuts(r.to_cut() for r in recs), tmp_path / "cuts_x.jsonl.gz")
    assert main(["features", "--kind", "mfcc", str(manifest), str(tmp_path / "f"), "-q"]) == 0
    assert "1 unreadable skipped" in capsys.readouterr().out
    skipped = (tmp_path / "f" / "x" / "shard-1-of-1.skipped.tsv").read_text()
    assert skipped.startswith("u1\t") and "u1.wav" in skipped
    assert [cid for cid, _ in DumpedFeatures(tmp_path / "f" / "x", progress=False)] == ["u0", "u2"]
    assert main(["features", "--kind", "mfcc", str(manifest), str(tmp_path / "g"), "--strict", "-q"]) == 1
    assert "u1.wav" in capsys.readouterr().err
    assert not (tmp_path / "g" / "x" / "shard-1-of-1.json").exists()
    assert not list((tmp_path / "g" / "x").glob("shard-1-of-1.bin"))


def test_hugging_face_folder_encoder_gives_the_same_features_and_fingerprint(tmp_path, mini_corpus):
    transformers = pytest.importorskip("transformers")
    from speechssl.convert.hf import encoder_from_hf
    from speechssl.features.build import build_extractor

    tiny = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_dim=[32, 32, 32],
                conv_kernel=[10, 8, 8], conv_stride=[5, 8, 8], num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)  # fmt: skip
    torch.manual_seed(0)
    transformers.HubertModel(transformers.HubertConfig(**tiny)).save_pretrained(tmp_path / "hf")
    save_encoder(encoder_from_hf(tmp_path / "hf"), tmp_path / "ours.safetensors")
    a = build_extractor("layer", encoder=tmp_path / "hf", layer=1, device="cpu")
    b = build_extractor("layer", encoder=tmp_path / "ours.safetensors", layer=1, device="cpu")
    assert a.spec.encoder == b.spec.encoder and a.spec.mismatch(b.spec) is None  # the path does not matter
    wav = _wav(0.5)[None]
    torch.testing.assert_close(a(wav, torch.tensor([wav.shape[1]]))[0], b(wav, torch.tensor([wav.shape[1]]))[0])
    with pytest.raises(ValueError, match=r"x.pt: not a readable PyTorch file .*; expected a fairseq checkpoint"):
        (tmp_path / "x.pt").write_bytes(b"not read")
        build_extractor("layer", encoder=tmp_path / "x.pt", layer=1)


@pytest.mark.gpu
def test_gpu_features_match_cpu(mini_corpus):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    wav = _wav(1.3)[None]
    lens = torch.tensor([wav.shape[1]])
    torch.testing.assert_close(MfccExtractor("cuda")(wav, lens)[0].cpu(), MfccExtractor()(wav, lens)[0], atol=1e-3, rtol=1e-3)
    torch.manual_seed(0)
    enc = build_encoder(preset("tiny_hubert")).eval()
    cpu = LayerExtractor(enc, 2)(wav, lens)[0]
    gpu = LayerExtractor(enc.cuda(), 2, dtype=torch.bfloat16)(wav, lens)[0]
    assert gpu.dtype == torch.float32 and gpu.device.type == "cuda"
    assert torch.nn.functional.cosine_similarity(gpu.cpu(), cpu, dim=-1).min() > 0.99
