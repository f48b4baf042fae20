"""torchaudio <-> speechssl parity: every variant torchaudio builds, randomly initialised and
perturbed, converted, and compared layer by layer on a padded batch (fp32, 1e-4).

torchaudio's ``extract_features`` lists the layers' outputs (never with a pre-LN model's final
LayerNorm): ours.hidden_states[i + 1] == theirs[i]; ours.hidden_states[0] is its transformer's
``_preprocess`` output and ours.last_hidden_state its encoder output. References are computed per
item, unpadded: torchaudio's own padded batch differs (its GroupNorm sees the padding; its WavLM
refuses lengths)."""

from __future__ import annotations

import pytest
import torch
import torchaudio
from torchaudio_refs import (
    STANDARD_KERNELS_CONV,
    assert_matches,
    padded_batch,
    perturb,
    tiny_torchaudio,
    torchaudio_reference,
)

from speechssl.convert.torchaudio import (
    encoder_from_torchaudio,
    encoder_to_torchaudio,
    encoder_to_torchaudio_state_dict,
)
from speechssl.models import preset

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases

VARIANTS = {
    "w2v-group-post": dict(kind="wav2vec2", mode="group_norm", conv_bias=False, pre_norm=False),
    "w2v-group-bias-pre": dict(kind="wav2vec2", mode="group_norm", conv_bias=True, pre_norm=True),
    "w2v-layer-bias-pre": dict(kind="wav2vec2", mode="layer_norm", conv_bias=True, pre_norm=True, pos_kernel=15, pos_groups=2),
    "w2v-layer-post-w64": dict(kind="wav2vec2", mode="layer_norm", conv_bias=False, pre_norm=False, width=64, heads=2, layers=3),
    "wavlm-group-post": dict(kind="wavlm", mode="group_norm", pre_norm=False, buckets=32, max_distance=64),
    "wavlm-layer-pre": dict(kind="wavlm", mode="layer_norm", conv_bias=True, pre_norm=True, buckets=16, max_distance=20),
    "wavlm-group-pre-w64": dict(kind="wavlm", mode="group_norm", pre_norm=True, width=64, heads=8, buckets=320, max_distance=800, pos_kernel=9),
    "wavlm-layer-post-odd": dict(kind="wavlm", mode="layer_norm", pre_norm=False, buckets=10, max_distance=7),
}


def _check(model, encoder, seed: int = 0) -> None:
    wavs, lens = padded_batch(seed=seed)
    refs = [torchaudio_reference(model, wavs[b, : int(n)]) for b, n in enumerate(lens)]
    with torch.no_grad():
        out = encoder.extract_features(wavs, lens)
    assert_matches(out, refs)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_model_object_parity_and_export(name):
    spec = dict(VARIANTS[name])
    model = tiny_torchaudio(spec.pop("kind"), **spec)
    encoder = encoder_from_torchaudio(model)
    cfg = encoder.config
    assert cfg.pre_norm == spec["pre_norm"] and cfg.extractor_mode == spec["mode"]
    assert cfg.num_heads == spec.get("heads", 4)
    if "buckets" in spec:
        assert (cfg.family, cfg.relative_position_buckets, cfg.relative_position_max_distance) == (
            "wavlm",
            spec["buckets"],
            spec["max_distance"],
        )
    else:
        assert cfg.family == "wav2vec2" and cfg.relative_position_buckets == 0
    _check(model, encoder)

    # export: the same tensors under the same names, and a torchaudio model that loads them
    theirs = model.state_dict()
    exported = encoder_to_torchaudio_state_dict(encoder)
    assert sorted(exported) == sorted(theirs)
    for key, value in theirs.items():
        assert torch.equal(exported[key], value), key
    rebuilt = encoder_to_torchaudio(encoder)
    wav = padded_batch([4000])[0]
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.extract_features(wav)[0][-1], model.extract_features(wav)[0][-1], atol=0, rtol=0)


def test_state_dict_with_config_and_file(tmp_path):
    model = tiny_torchaudio("wav2vec2", mode="layer_norm", conv_bias=True, pre_norm=True)
    cfg = preset("tiny_wav2vec2", extractor_mode="layer_norm", conv_bias=True, pre_norm=True)
    _check(model, encoder_from_torchaudio(model.state_dict(), cfg))
    path = tmp_path / "w2v.pt"
    torch.save(model.state_dict(), path)
    _check(model, encoder_from_torchaudio(str(path), cfg))


def test_old_weight_norm_form():
    model = tiny_torchaudio("wavlm")
    state = model.state_dict()
    prefix = "encoder.transformer.pos_conv_embed.conv."
    state[prefix + "weight_g"] = state.pop(prefix + "parametrizations.weight.original0")
    state[prefix + "weight_v"] = state.pop(prefix + "parametrizations.weight.original1")
    _check(model, encoder_from_torchaudio(state, preset("tiny_wavlm", relative_position_max_distance=64)))


def test_bare_wavlm_state_dict_infers_everything():
    # heads from the relative position embedding, strides from the standard kernels, max_distance 800
    model = tiny_torchaudio("wavlm", conv=STANDARD_KERNELS_CONV, heads=2, buckets=24, max_distance=800)
    encoder = encoder_from_torchaudio(model.state_dict())
    assert encoder.config.num_heads == 2 and encoder.config.conv_layers == STANDARD_KERNELS_CONV
    assert encoder.config.relative_position_max_distance == 800 and not encoder.config.pre_norm
    _check(model, encoder)


def test_bare_state_dict_published_width():
    # a 768-wide layer-norm front end: 12 heads (published widths) and pre-LN (torchaudio's pairing)
    model = tiny_torchaudio(
        "wav2vec2", mode="layer_norm", conv_bias=True, pre_norm=True, conv=STANDARD_KERNELS_CONV,
        width=768, heads=12, ffn=64, layers=1, pos_groups=16,
    )
    encoder = encoder_from_torchaudio(model.state_dict())
    assert (encoder.config.num_heads, encoder.config.pre_norm, encoder.config.hidden_size) == (12, True, 768)
    _check(model, encoder)


def test_bare_state_dict_needs_config():
    with pytest.raises(ValueError, match="strides .* pass config="):
        encoder_from_torchaudio(tiny_torchaudio("wav2vec2").state_dict())
    with pytest.raises(ValueError, match="heads .* pass config="):
        encoder_from_torchaudio(tiny_torchaudio("wav2vec2", conv=STANDARD_KERNELS_CONV).state_dict())


def test_hubert_pretrain_model():
    torch.manual_seed(0)
    model = torchaudio.models.hubert_pretrain_model(
        extractor_mode="group_norm", extractor_conv_layer_config=[(32, 10, 5), (32, 8, 8), (32, 8, 8)],
        extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16,
        encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=4, encoder_attention_dropout=0.0,
        encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
        encoder_layer_norm_first=False, encoder_layer_drop=0.0, mask_prob=0.5, mask_selection="static",
        mask_other=0.0, mask_length=2, no_mask_overlap=False, mask_min_space=1, mask_channel_prob=0.0,
        mask_channel_selection="static", mask_channel_other=0.0, mask_channel_length=2, no_mask_channel_overlap=False,
        mask_channel_min_space=1, skip_masked=False, skip_nomask=False, num_classes=10, final_dim=16,
        feature_grad_mult=None,
    )
    perturb(model)
    model.eval()
    encoder = encoder_from_torchaudio(model)
    assert encoder.config.family == "hubert"
    assert torch.equal(encoder.mask_embedding, model.mask_generator.mask_embedding)
    _check(model, encoder)


def test_pipeline_wrapper_is_unwrapped():
    from torchaudio.pipelines._wav2vec2.utils import _Wav2Vec2Model  # what bundles of Large models return

    model = tiny_torchaudio("wav2vec2", mode="layer_norm", pre_norm=True)
    wrapped = _Wav2Vec2Model(model, normalize_waveform=True, apply_log_softmax=False, append_star=False)
    encoder = encoder_from_torchaudio(wrapped)
    assert encoder.config.normalize_waveform  # the wrapper layer-normalises waveforms; so do we
    encoder.config.normalize_waveform = False  # the normalisation has its own test; compare the network
    _check(model, encoder)
    cfg = preset("tiny_wav2vec2", extractor_mode="layer_norm", pre_norm=True)
    _check(model, encoder_from_torchaudio(wrapped.state_dict(), cfg))  # keys under "model."


def test_ctc_head_is_dropped():
    model = tiny_torchaudio("wav2vec2", aux=7)
    _check(model, encoder_from_torchaudio(model))


def test_unknown_and_missing_keys_are_listed():
    model = tiny_torchaudio("wav2vec2")
    cfg = preset("tiny_wav2vec2")
    extra = dict(model.state_dict())
    extra["encoder.transformer.layers.0.attention.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"unexpected: encoder\.transformer\.layers\.0\.attention\.extra\.weight"):
        encoder_from_torchaudio(extra, cfg)
    missing = dict(model.state_dict())
    del missing["encoder.transformer.layers.1.feed_forward.output_dense.bias"]
    with pytest.raises(ValueError, match=r"missing: encoder\.transformer\.layers\.1\.feed_forward\.output_dense\.bias"):
        encoder_from_torchaudio(missing, cfg)
    with pytest.raises(ValueError, match="wrong shape"):
        encoder_from_torchaudio(model.state_dict(), preset("tiny_wav2vec2", ffn_size=48))
    with pytest.raises(ValueError, match="missing"):  # a group-norm model read as layer-norm
        encoder_from_torchaudio(model.state_dict(), preset("tiny_wav2vec2", extractor_mode="layer_norm"))


def test_config_must_match_the_model_object():
    model = tiny_torchaudio("wav2vec2")
    with pytest.raises(ValueError, match="num_heads=2 .the model has 4."):
        encoder_from_torchaudio(model, preset("tiny_wav2vec2", num_heads=2))
    with pytest.raises(ValueError, match="pre_norm"):
        encoder_from_torchaudio(model, preset("tiny_wav2vec2", pre_norm=True))


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError):
        encoder_from_torchaudio(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="expected a torchaudio"):
        encoder_from_torchaudio(42)
    with pytest.raises(ValueError, match="Linear is not a torchaudio Wav2Vec2Model"):
        encoder_from_torchaudio(torch.nn.Linear(2, 2))
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match=str(path)):
        encoder_from_torchaudio(path)


def test_convert_cli_from_a_state_dict_file(tmp_path, capsys):
    from speechssl.cli import convert

    model = tiny_torchaudio("wavlm", seed=3)
    torch.save(model.state_dict(), tmp_path / "wavlm.pt")
    out = tmp_path / "wavlm.safetensors"
    assert convert.main(["--from", "torchaudio", str(tmp_path / "wavlm.pt"), str(out), "--preset", "tiny_wavlm"]) == 0
    import speechssl

    _check(model, speechssl.load_encoder(out))
    assert convert.main(["--from", "hf", str(tmp_path / "wavlm.pt"), str(out), "--preset", "tiny_wavlm"]) == 1
    assert "--preset applies to --from torchaudio only" in capsys.readouterr().err
