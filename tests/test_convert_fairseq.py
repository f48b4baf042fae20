"""fairseq / unilm checkpoints -> speechssl parity.

Checkpoints are written here in fairseq's exact layout (``{"cfg": {"model": {...}}, "model": state}``,
unilm WavLM's flat cfg, old fairseq's ``args``, fine-tuned CTC models with ``w2v_args``) from a
randomly initialised torchaudio (or transformers) model through the name mapping below, then read
with ``encoder_from_fairseq`` and compared with that model, layer by layer, on a padded batch."""

from __future__ import annotations

import re
from argparse import Namespace

import pytest
import torch
from torchaudio_refs import CONV, assert_matches, padded_batch, perturb, tiny_torchaudio, torchaudio_reference

from speechssl.convert.fairseq import encoder_from_fairseq, parse_conv_layers

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases

CONV_STRING = "[(32, 10, 5)] + [(32, 8, 8)] * 2"


# ------------------------------------------------------------------- torchaudio -> fairseq names
def fairseq_state(model: torch.nn.Module, *, mode: str, prefix: str = "", new_weight_norm: bool = False, seed: int = 0) -> dict:
    """torchaudio's state dict renamed to fairseq's (wav2vec2.py / hubert.py / unilm WavLM.py)."""
    norm = r"\1.2.1." if mode == "layer_norm" else r"\1.2."  # Sequential(conv, dropout, norm, gelu)
    g_name, v_name = ("parametrizations.weight.original0", "parametrizations.weight.original1") if new_weight_norm else ("weight_g", "weight_v")
    rules = [
        (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
        (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", "feature_extractor.conv_layers." + norm),
        (r"^encoder\.feature_projection\.layer_norm\.", "layer_norm."),
        (r"^encoder\.feature_projection\.projection\.", "post_extract_proj."),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$", "encoder.pos_conv.0." + g_name),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$", "encoder.pos_conv.0." + v_name),
        (r"^encoder\.transformer\.pos_conv_embed\.conv\.bias$", "encoder.pos_conv.0.bias"),
        (r"^encoder\.transformer\.layer_norm\.", "encoder.layer_norm."),
        (r"^encoder\.transformer\.layers\.(\d+)\.attention\.attention\.out_proj\.", r"encoder.layers.\1.self_attn.out_proj."),
        (r"^encoder\.transformer\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.", r"encoder.layers.\1.self_attn.\2_proj."),
        (r"^encoder\.transformer\.layers\.(\d+)\.attention\.gru_rel_pos_linear\.", r"encoder.layers.\1.self_attn.grep_linear."),
        (r"^encoder\.transformer\.layers\.(\d+)\.attention\.gru_rel_pos_const$", r"encoder.layers.\1.self_attn.grep_a"),
        (r"^encoder\.transformer\.layers\.(\d+)\.attention\.rel_attn_embed\.", r"encoder.layers.\1.self_attn.relative_attention_bias."),
        (r"^encoder\.transformer\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
        (r"^encoder\.transformer\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
        (r"^encoder\.transformer\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
        (r"^encoder\.transformer\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
    ]
    out = {}
    for key, value in model.state_dict().items():
        m = re.match(r"^encoder\.transformer\.layers\.(\d+)\.attention\.attention\.in_proj_(weight|bias)$", key)
        if m:  # nn.MultiheadAttention packs q, k, v; fairseq keeps them apart
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{prefix}encoder.layers.{m.group(1)}.self_attn.{name}.{m.group(2)}"] = part.clone()
            continue
        for pattern, repl in rules:
            if re.match(pattern, key):
                out[prefix + re.sub(pattern, repl, key)] = value.clone()
                break
        else:
            raise AssertionError(f"test mapping misses {key}")
    width = model.encoder.feature_projection.projection.out_features
    out[prefix + "mask_emb"] = torch.rand(width, generator=torch.Generator().manual_seed(seed))
    return out


def model_cfg(name: str, *, mode: str = "group_norm", conv_bias: bool = False, pre_norm: bool = False, width: int = 32,
              heads: int = 4, layers: int = 2, pos_kernel: int = 16, pos_groups: int = 4, conv: str = CONV_STRING) -> dict:
    """A fairseq model config (the fields Wav2Vec2Config / HubertConfig save, the ones read and some others)."""
    return {
        "_name": name,
        "extractor_mode": "layer_norm" if mode == "layer_norm" else "default",
        "encoder_layers": layers,
        "encoder_embed_dim": width,
        "encoder_ffn_embed_dim": 64,
        "encoder_attention_heads": heads,
        "activation_fn": "gelu",
        "layer_type": "transformer",
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.05,
        "dropout_input": 0.1,
        "dropout_features": 0.1,
        "final_dim": 16,
        "layer_norm_first": pre_norm,
        "conv_feature_layers": conv,
        "conv_bias": conv_bias,
        "logit_temp": 0.1,
        "feature_grad_mult": 0.1,
        "mask_length": 10,
        "mask_prob": 0.65,
        "conv_pos": pos_kernel,
        "conv_pos_groups": pos_groups,
        "pos_conv_depth": 1,
        "latent_temp": [2.0, 0.5, 0.999995],
    }


def _check(model, path, **kwargs):
    encoder = encoder_from_fairseq(path)
    wavs, lens = padded_batch()
    # task.normalize=True checkpoints: fairseq feeds F.layer_norm(wav, wav.shape), so the reference gets that
    prep = (lambda w: torch.nn.functional.layer_norm(w, w.shape)) if encoder.config.normalize_waveform else (lambda w: w)
    refs = [torchaudio_reference(model, prep(wavs[b, : int(n)])) for b, n in enumerate(lens)]
    with torch.no_grad():
        assert_matches(encoder.extract_features(wavs, lens), refs, **kwargs)
    return encoder


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize(
    "name, mode, conv_bias, pre_norm",
    [("hubert", "group_norm", False, False), ("hubert", "layer_norm", True, True), ("wav2vec2", "layer_norm", False, False), ("wav2vec2", "group_norm", True, True)],
)
def test_pretrained_checkpoint(tmp_path, name, mode, conv_bias, pre_norm):
    model = tiny_torchaudio("wav2vec2", mode=mode, conv_bias=conv_bias, pre_norm=pre_norm)
    state = fairseq_state(model, mode=mode, new_weight_norm=pre_norm)
    if name == "hubert":  # pretraining heads, dropped by name
        state.update({"label_embs_concat": torch.zeros(10, 16), "final_proj.weight": torch.zeros(16, 32), "final_proj.bias": torch.zeros(16)})
    else:
        state.update({"quantizer.vars": torch.zeros(1, 64, 8), "quantizer.weight_proj.weight": torch.zeros(64, 32),
                      "quantizer.weight_proj.bias": torch.zeros(64), "project_q.weight": torch.zeros(16, 16),
                      "project_q.bias": torch.zeros(16), "final_proj.weight": torch.zeros(16, 32), "final_proj.bias": torch.zeros(16)})
    path = tmp_path / f"{name}.pt"
    cfg = {"common": {"fp16": True}, "task": {"_name": "hubert_pretraining", "normalize": False}, "model": model_cfg(name, mode=mode, conv_bias=conv_bias, pre_norm=pre_norm)}
    torch.save({"cfg": cfg, "model": state, "optimizer_history": [], "extra_state": {}}, path)
    encoder = _check(model, path)
    c = encoder.config
    assert (c.family, c.pre_norm, c.conv_bias, c.conv_layers) == (name, pre_norm, conv_bias, CONV)
    assert (c.dropout, c.layer_drop, c.feature_dropout) == (0.1, 0.05, 0.1)
    assert torch.equal(encoder.mask_embedding, state["mask_emb"])


@pytest.mark.parametrize("name", ["hubert_ctc", "wav2vec_ctc"])
def test_finetuned_ctc_checkpoint(tmp_path, name):
    model = tiny_torchaudio("wav2vec2", mode="layer_norm", conv_bias=True, pre_norm=True, seed=1)
    prefix = "w2v_encoder.w2v_model."
    state = fairseq_state(model, mode="layer_norm", prefix=prefix)
    state.update({"w2v_encoder.proj.weight": torch.zeros(30, 32), "w2v_encoder.proj.bias": torch.zeros(30)})
    pretrained = {"task": {"_name": "hubert_pretraining", "normalize": True},
                  "model": model_cfg(name.split("_")[0].replace("wav2vec", "wav2vec2"), mode="layer_norm", conv_bias=True, pre_norm=True)}
    finetune = {"_name": name, "w2v_path": "/somewhere/pretrained.pt", "dropout": 0.0, "attention_dropout": 0.0,
                "activation_dropout": 0.1, "dropout_input": 0.0, "layerdrop": 0.1, "w2v_args": pretrained}
    path = tmp_path / "ctc.pt"
    torch.save({"cfg": {"task": {"_name": "audio_finetuning", "normalize": True}, "model": finetune}, "model": state}, path)
    encoder = _check(model, path)
    c = encoder.config
    assert c.family == ("hubert" if name == "hubert_ctc" else "wav2vec2")
    assert c.normalize_waveform  # from the pretraining task's normalize=True
    assert (c.dropout, c.attention_dropout, c.activation_dropout, c.feature_dropout, c.layer_drop) == (0.0, 0.0, 0.1, 0.0, 0.1)


def test_pre_hydra_args_checkpoint(tmp_path):
    model = tiny_torchaudio("wav2vec2", seed=2)
    args = Namespace(**{("arch" if k == "_name" else k): v for k, v in model_cfg("wav2vec2").items()}, normalize=False)
    path = tmp_path / "old.pt"
    torch.save({"args": args, "model": fairseq_state(model, mode="group_norm")}, path)
    assert encoder_from_fairseq(path).config.family == "wav2vec2"
    _check(model, path)


def test_no_post_extract_proj_gives_identity(tmp_path):
    # fairseq builds no post_extract_proj when the conv width equals the transformer width
    model = tiny_torchaudio("wav2vec2", seed=3)
    with torch.no_grad():
        model.encoder.feature_projection.projection.weight.copy_(torch.eye(32))
        model.encoder.feature_projection.projection.bias.zero_()
    state = {k: v for k, v in fairseq_state(model, mode="group_norm").items() if not k.startswith("post_extract_proj.")}
    path = tmp_path / "noproj.pt"
    torch.save({"cfg": {"model": model_cfg("hubert")}, "model": state}, path)
    _check(model, path)


WAVLM_VARIANTS = {
    "group-post": dict(mode="group_norm", pre_norm=False, buckets=32, max_distance=64),
    "layer-pre": dict(mode="layer_norm", conv_bias=True, pre_norm=True, buckets=20, max_distance=100),
}


@pytest.mark.parametrize("variant", list(WAVLM_VARIANTS))
def test_wavlm_checkpoint(tmp_path, variant):
    spec = WAVLM_VARIANTS[variant]
    model = tiny_torchaudio("wavlm", **spec, seed=4)
    state = fairseq_state(model, mode=spec["mode"])
    flat = {k: v for k, v in model_cfg("wavlm", mode=spec["mode"], conv_bias=spec.get("conv_bias", False), pre_norm=spec["pre_norm"]).items() if k != "_name"}
    flat.update(relative_position_embedding=True, num_buckets=spec["buckets"], max_distance=spec["max_distance"], gru_rel_pos=True, normalize=spec["pre_norm"])
    path = tmp_path / "WavLM.pt"
    torch.save({"cfg": flat, "model": state}, path)
    encoder = _check(model, path)
    c = encoder.config
    assert (c.family, c.relative_position_buckets, c.relative_position_max_distance, c.gated_relative_position) == ("wavlm", spec["buckets"], spec["max_distance"], True)
    assert c.normalize_waveform == spec["pre_norm"]


def test_wavlm_against_transformers(tmp_path):
    """A second, independent reference for the relative position bias and its gate."""
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.WavLMConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_dim=(32, 32, 32),
        conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        num_buckets=32, max_bucket_distance=64, feat_extract_norm="group", do_stable_layer_norm=False, hidden_dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0,
    )
    torch.manual_seed(5)
    hf = transformers.WavLMModel(hf_cfg)
    perturb(hf, 5)
    hf.eval()
    rules = [  # transformers' names -> unilm's
        (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
        (r"^feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
        (r"^feature_projection\.layer_norm\.", "layer_norm."),
        (r"^feature_projection\.projection\.", "post_extract_proj."),
        (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$", "encoder.pos_conv.0.weight_g"),
        (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$", "encoder.pos_conv.0.weight_v"),
        (r"^encoder\.pos_conv_embed\.conv\.bias$", "encoder.pos_conv.0.bias"),
        (r"^encoder\.layer_norm\.", "encoder.layer_norm."),
        (r"^encoder\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.", r"encoder.layers.\1.self_attn.\2_proj."),
        (r"^encoder\.layers\.(\d+)\.attention\.gru_rel_pos_linear\.", r"encoder.layers.\1.self_attn.grep_linear."),
        (r"^encoder\.layers\.(\d+)\.attention\.gru_rel_pos_const$", r"encoder.layers.\1.self_attn.grep_a"),
        (r"^encoder\.layers\.(\d+)\.attention\.rel_attn_embed\.", r"encoder.layers.\1.self_attn.relative_attention_bias."),
        (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
        (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
        (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
        (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
    ]
    state = {}
    for key, value in hf.state_dict().items():
        pattern, repl = next((p, r) for p, r in rules if re.match(p, key))
        state[re.sub(pattern, repl, key)] = value.clone()
    state["mask_emb"] = torch.rand(32)
    flat = {k: v for k, v in model_cfg("wavlm").items() if k != "_name"}
    flat.update(relative_position_embedding=True, num_buckets=32, max_distance=64, gru_rel_pos=True)
    path = tmp_path / "WavLM-hf.pt"
    torch.save({"cfg": flat, "model": state}, path)
    encoder = encoder_from_fairseq(path)
    wavs, lens = padded_batch()
    with torch.no_grad():
        out = encoder.extract_features(wavs, lens)
        for b, n in enumerate(lens.tolist()):
            theirs = hf(wavs[b : b + 1, :n], output_hidden_states=True).hidden_states
            frames = theirs[0].shape[1]
            assert int(out.lengths[b]) == frames and len(theirs) == len(out.hidden_states)
            for ours, ref in zip(out.hidden_states, theirs):
                torch.testing.assert_close(ours[b, :frames], ref[0], atol=1e-4, rtol=0)


def test_normalize_flag_is_read(tmp_path):
    model = tiny_torchaudio("wav2vec2", mode="layer_norm", pre_norm=True)
    for normalize in (True, False):
        path = tmp_path / f"large_{normalize}.pt"
        cfg = {"task": {"normalize": normalize}, "model": model_cfg("wav2vec2", mode="layer_norm", pre_norm=True)}
        torch.save({"cfg": cfg, "model": fairseq_state(model, mode="layer_norm")}, path)
        assert encoder_from_fairseq(path).config.normalize_waveform is normalize


# ------------------------------------------------------------------------------------ bad files
@pytest.fixture
def good_checkpoint():
    model = tiny_torchaudio("wav2vec2", seed=6)
    return {"cfg": {"model": model_cfg("hubert")}, "model": fairseq_state(model, mode="group_norm")}


def _save(tmp_path, ckpt, name="bad.pt"):
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def test_missing_key_is_named(tmp_path, good_checkpoint):
    del good_checkpoint["model"]["encoder.layers.1.fc2.bias"]
    path = _save(tmp_path, good_checkpoint)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: .*missing: encoder\.layers\.1\.fc2\.bias"):
        encoder_from_fairseq(path)


def test_unknown_key_is_named(tmp_path, good_checkpoint):
    good_checkpoint["model"]["encoder.layers.0.self_attn.extra.weight"] = torch.zeros(2)
    path = _save(tmp_path, good_checkpoint)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: .*unexpected: encoder\.layers\.0\.self_attn\.extra\.weight"):
        encoder_from_fairseq(path)


@pytest.mark.parametrize("spec", ["[(32, 10, 5)] + __import__('os')", "[(32, 10)] * 3", "[(32, 10, 5)] * ", "(32, 10, 5)", ""])
def test_bad_conv_feature_layers(tmp_path, good_checkpoint, spec):
    good_checkpoint["cfg"]["model"]["conv_feature_layers"] = spec
    path = _save(tmp_path, good_checkpoint)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: conv_feature_layers"):
        encoder_from_fairseq(path)


def test_conv_layers_that_do_not_match_the_weights(tmp_path, good_checkpoint):
    good_checkpoint["cfg"]["model"]["conv_feature_layers"] = "[(32, 10, 5)] + [(32, 8, 8)]"
    path = _save(tmp_path, good_checkpoint)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: .*unexpected: feature_extractor\.conv_layers\.2\.0\.weight"):
        encoder_from_fairseq(path)


def test_unsupported_models_and_layouts(tmp_path, good_checkpoint):
    bad = dict(good_checkpoint, cfg={"model": dict(good_checkpoint["cfg"]["model"], _name="data2vec_audio")})
    with pytest.raises(ValueError, match="'data2vec_audio' is not one speechssl converts; valid: hubert, wav2vec2"):
        encoder_from_fairseq(_save(tmp_path, bad))
    bad = dict(good_checkpoint, cfg={"model": dict(good_checkpoint["cfg"]["model"], layer_type="conformer")})
    with pytest.raises(ValueError, match="layer_type='conformer'"):
        encoder_from_fairseq(_save(tmp_path, bad))
    with pytest.raises(ValueError, match="no model config"):
        encoder_from_fairseq(_save(tmp_path, {"model": good_checkpoint["model"]}))
    path = _save(tmp_path, torch.zeros(3))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: expected a fairseq checkpoint"):
        encoder_from_fairseq(path)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="text.pt: not a readable PyTorch file"):
        encoder_from_fairseq(tmp_path / "text.pt")
    with pytest.raises(FileNotFoundError):
        encoder_from_fairseq(tmp_path / "absent.pt")


# --------------------------------------------------------------------------------------- parser
@pytest.mark.parametrize(
    "spec, expected",
    [
        ("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2", [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2),
        ("[(512, 10, 5), (512, 8, 4)] + [(512, 4, 2)] * 3 + [(512, 1, 1)]", [(512, 10, 5), (512, 8, 4)] + [(512, 4, 2)] * 3 + [(512, 1, 1)]),
        (" [ (32,10,5,), ] + 2 * [(32,8,8)] ", [(32, 10, 5), (32, 8, 8), (32, 8, 8)]),
        ("([(1,2,3)] + [(4,5,6)]) * 2", [(1, 2, 3), (4, 5, 6)] * 2),
        ("[(1,2,3)] * 2 * 2", [(1, 2, 3)] * 4),
    ],
)
def test_parse_conv_layers(spec, expected):
    assert parse_conv_layers(spec) == expected


@pytest.mark.parametrize(
    "spec, why",
    [
        ("[(1,2,3)] - [(1,2,3)]", "unexpected character '-'"),
        ("[(1,2)]", "expected ','"),
        ("[(1,2,3,4)]", "expected '\\)'"),
        ("[(1,2,3)] * 0", "no layers"),
        ("[(0,2,3)]", "zero size"),
        ("[(1,2,3)] * 100000", "more than 1000 layers"),
        ("[(1,2,3)] [(1,2,3)]", "after the expression"),
        ("[(1.5,2,3)]", "unexpected character '.'"),
    ],
)
def test_parse_conv_layers_rejects(spec, why):
    with pytest.raises(ValueError, match=why):
        parse_conv_layers(spec)


def test_convert_cli_and_load_encoder(tmp_path, good_checkpoint, capsys):
    import speechssl
    from speechssl.cli import convert

    path = _save(tmp_path, good_checkpoint, "hubert.pt")
    assert convert.main(["--from", "fairseq", str(path), str(tmp_path / "hubert.safetensors")]) == 0
    assert "hubert, 2 layers, width 32" in capsys.readouterr().out
    direct = speechssl.load_encoder(path)  # read safely: no flag needed
    converted = speechssl.load_encoder(tmp_path / "hubert.safetensors")
    wavs, lens = padded_batch()
    with torch.no_grad():
        for a, b in zip(direct.extract_features(wavs, lens).hidden_states, converted.extract_features(wavs, lens).hidden_states):
            assert torch.equal(a, b)
