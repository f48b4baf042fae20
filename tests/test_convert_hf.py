"""Parity with transformers: randomly initialised HubertModel / WavLMModel / Wav2Vec2Model saved
with save_pretrained, converted, give transformers' hidden states (fp32, within 1e-4) on a padded
batch; exported folders load back into transformers with identical outputs."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from speechssl.convert.hf import encoder_from_hf, encoder_to_hf  # noqa: E402

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    conv_dim=[32, 32, 32], conv_kernel=[10, 8, 8], conv_stride=[5, 8, 8],
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
)  # fmt: skip
LARGE_STYLE = dict(feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True)

VARIANTS = {
    "hubert_base_style": ("HubertModel", {}),
    "hubert_large_style": ("HubertModel", LARGE_STYLE),
    "hubert_group_norm_conv_bias": ("HubertModel", dict(conv_bias=True)),
    "hubert_layer_norm_post_ln": ("HubertModel", dict(feat_extract_norm="layer")),
    "hubert_no_proj_norm": ("HubertModel", dict(feat_proj_layer_norm=False)),
    "hubert_wide_3_layers": ("HubertModel", dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=8, intermediate_size=128, conv_dim=[48, 48, 48])),
    "hubert_even_odd_pos_kernel": ("HubertModel", dict(num_conv_pos_embeddings=15)),
    "wavlm_base_style": ("WavLMModel", dict(num_buckets=32, max_bucket_distance=64)),
    "wavlm_large_style": ("WavLMModel", dict(LARGE_STYLE, num_buckets=32, max_bucket_distance=64)),
    "wavlm_320_buckets_800": ("WavLMModel", dict(num_buckets=320, max_bucket_distance=800)),
    "wavlm_few_buckets_short": ("WavLMModel", dict(num_buckets=8, max_bucket_distance=16)),
    "wav2vec2_base_style": ("Wav2Vec2Model", {}),
    "wav2vec2_large_style": ("Wav2Vec2Model", LARGE_STYLE),
}  # fmt: skip


def _reference(cls_name: str, overrides: dict, seed: int = 0):
    torch.manual_seed(seed)
    cls = getattr(transformers, cls_name)
    model = cls(cls.config_class(**{**TINY, **overrides})).eval()
    with torch.no_grad():  # every parameter off its init value, so a mix-up cannot hide
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(123)
    return torch.randn(3, 20000), torch.tensor([20000, 13000, 6500])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_hidden_states_match_transformers_on_a_padded_batch(variant, batch, tmp_path):
    cls_name, overrides = VARIANTS[variant]
    ref = _reference(cls_name, overrides)
    ref.save_pretrained(tmp_path)
    ours = encoder_from_hf(tmp_path)
    wavs, lens = batch
    with torch.no_grad():
        out = ours.extract_features(wavs, lens)
        for i in range(len(lens)):
            theirs = ref(wavs[i : i + 1, : lens[i]], output_hidden_states=True)
            n = int(out.lengths[i])
            assert len(theirs.hidden_states) == len(out.hidden_states) == ours.num_layers + 1
            for a, b in zip(theirs.hidden_states, out.hidden_states):
                torch.testing.assert_close(b[i, :n], a[0], atol=1e-4, rtol=0)
            torch.testing.assert_close(out.last_hidden_state[i, :n], theirs.last_hidden_state[0], atol=1e-4, rtol=0)
        if overrides.get("feat_extract_norm") == "layer":
            # layer-norm front ends: transformers masks padding itself, so its padded batch agrees too
            mask = (torch.arange(wavs.shape[1])[None] < lens[:, None]).long()
            theirs = ref(wavs, attention_mask=mask, output_hidden_states=True)
            for i in range(len(lens)):
                n = int(out.lengths[i])
                torch.testing.assert_close(out.hidden_states[-1][i, :n], theirs.hidden_states[-1][i, :n], atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", ["hubert_large_style", "wavlm_base_style", "wav2vec2_base_style"])
def test_export_loads_in_transformers(variant, batch, tmp_path):
    cls_name, overrides = VARIANTS[variant]
    ref = _reference(cls_name, overrides, seed=1)
    ref.save_pretrained(tmp_path / "ref")
    ours = encoder_from_hf(tmp_path / "ref")
    encoder_to_hf(ours, tmp_path / "out")
    back = transformers.AutoModel.from_pretrained(tmp_path / "out").eval()
    assert type(back).__name__ == cls_name
    wavs, _ = batch
    with torch.no_grad():
        a = ref(wavs, output_hidden_states=True).hidden_states
        b = back(wavs, output_hidden_states=True).hidden_states
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    "task_cls, encoder_attr, extra",
    [
        ("HubertForCTC", "hubert", dict(vocab_size=12)),
        ("WavLMForCTC", "wavlm", dict(vocab_size=12, num_buckets=32, max_bucket_distance=64)),
        ("Wav2Vec2ForPreTraining", "wav2vec2", dict(codevector_dim=16, proj_codevector_dim=16, num_codevectors_per_group=8)),
        ("Wav2Vec2ForSequenceClassification", "wav2vec2", dict(num_labels=4, use_weighted_layer_sum=True)),
    ],
)
def test_task_model_encoder_is_imported(task_cls, encoder_attr, extra, tmp_path, batch):
    torch.manual_seed(0)
    cls = getattr(transformers, task_cls)
    model = cls(cls.config_class(**TINY, **extra)).eval()
    model.save_pretrained(tmp_path)
    ours = encoder_from_hf(tmp_path)
    wavs, _ = batch
    with torch.no_grad():
        ref = getattr(model, encoder_attr)(wavs[:1], output_hidden_states=True).hidden_states
        got = ours.extract_features(wavs[:1]).hidden_states
    for x, y in zip(ref, got):
        torch.testing.assert_close(y, x, atol=1e-4, rtol=0)


def test_mismatched_or_broken_folders(tmp_path):
    ref = _reference("HubertModel", {})
    ref.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["num_hidden_layers"] = 3  # weights for 2 layers only
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"weights do not match the architecture \(missing: encoder.layers.2"):
        encoder_from_hf(tmp_path / "m")
    cfg["num_hidden_layers"], cfg["intermediate_size"] = 2, cfg["intermediate_size"] * 2  # weights of another width
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"m \(its config.json and weights disagree\): weights do not match the architecture .*wrong shape: encoder.layers.0.feed_forward.fc1.weight"):
        encoder_from_hf(tmp_path / "m")
    cfg["intermediate_size"] //= 2
    cfg["model_type"] = "whisper"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="config.json: model_type 'whisper' is not an encoder"):
        encoder_from_hf(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        encoder_from_hf(tmp_path / "empty")


def test_do_normalize_travels_with_the_folder(tmp_path):
    from speechssl.models import build_encoder, preset

    for normalize in (True, False):
        encoder = build_encoder(preset("tiny_wav2vec2", normalize_waveform=normalize, extractor_mode="layer_norm", pre_norm=True))
        encoder_to_hf(encoder, tmp_path / str(normalize))
        prep = json.loads((tmp_path / str(normalize) / "preprocessor_config.json").read_text())
        assert prep["do_normalize"] is normalize and prep["return_attention_mask"] is True
        assert encoder_from_hf(tmp_path / str(normalize)).config.normalize_waveform is normalize
        fe = transformers.AutoFeatureExtractor.from_pretrained(tmp_path / str(normalize))
        assert fe.do_normalize is normalize and fe.sampling_rate == 16000
