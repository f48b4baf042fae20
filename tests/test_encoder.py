"""Encoder properties: padded batch vs single item, output lengths vs conv arithmetic, state_dict
round trip, determinism, presets' published sizes."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import PRESETS, build_encoder, preset
from speechssl.models.components import MaskedChannelNorm, conv_output_lengths


def _perturbed(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = build_encoder(preset(name, **overrides)).eval()
    with torch.no_grad():  # move norms and biases off their init values so that mistakes show
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


VARIANTS = {
    "hubert_post_ln_group": ("tiny_hubert", {}),
    "hubert_pre_ln_layer_bias": ("tiny_hubert", dict(pre_norm=True, extractor_mode="layer_norm", conv_bias=True)),
    "wavlm_post_ln": ("tiny_wavlm", {}),
    "wavlm_pre_ln": ("tiny_wavlm", dict(pre_norm=True, extractor_mode="layer_norm", conv_bias=True)),
    "wav2vec2_no_proj_norm": ("tiny_wav2vec2", dict(feature_proj_layer_norm=False)),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_padded_batch_equals_items_alone(variant):
    name, overrides = VARIANTS[variant]
    model = _perturbed(name, **overrides)
    wavs = torch.randn(3, 24000)
    lens = torch.tensor([24000, 17000, 9000])
    with torch.no_grad():
        out = model.extract_features(wavs, lens)
        assert len(out.hidden_states) == model.num_layers + 1
        for i in range(3):
            alone = model.extract_features(wavs[i : i + 1, : lens[i]])
            n = int(out.lengths[i])
            assert n == alone.hidden_states[0].shape[1]
            for a, b in zip(alone.hidden_states, out.hidden_states):
                torch.testing.assert_close(b[i, :n], a[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(out.last_hidden_state[i, :n], alone.last_hidden_state[0], atol=1e-5, rtol=1e-4)


def test_output_lengths_follow_conv_arithmetic():
    model = build_encoder(preset("tiny_hubert")).eval()
    for samples in (400, 401, 719, 720, 16000, 16319, 16320):
        expected = samples
        for _, k, s in model.config.conv_layers:
            expected = (expected - k) // s + 1
        with torch.no_grad():
            out = model.extract_features(torch.randn(1, samples))
        assert out.hidden_states[-1].shape[1] == expected == int(model.output_lengths(torch.tensor([samples]))[0])
    full = build_encoder(preset("hubert_base")).config
    assert int(conv_output_lengths(torch.tensor([16000]), full.conv_layers)[0]) == 49  # 20 ms frames
    assert full.downsample_rate == 320


def test_masked_channel_norm_equals_group_norm_without_padding():
    norm = MaskedChannelNorm(8)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 8, 50)
    ref = torch.nn.functional.group_norm(x, 8, norm.weight, norm.bias, 1e-5)
    torch.testing.assert_close(norm(x), ref)
    torch.testing.assert_close(norm(x, torch.tensor([50, 50])), ref, atol=1e-5, rtol=1e-5)


def test_state_dict_round_trip_and_determinism():
    a = _perturbed("tiny_wavlm", seed=1)
    b = build_encoder(preset("tiny_wavlm")).eval()
    b.load_state_dict(a.state_dict())
    wavs = torch.randn(2, 8000)
    with torch.no_grad():
        for x, y in zip(a.extract_features(wavs).hidden_states, b.extract_features(wavs).hidden_states):
            assert torch.equal(x, y)
    assert all(torch.equal(p, q) for p, q in zip(_perturbed("tiny_wavlm", seed=1).parameters(), a.parameters()))


def test_published_sizes():
    millions = {name: sum(p.numel() for p in build_encoder(preset(name)).parameters()) / 1e6 for name in ("hubert_base", "wavlm_base_plus", "hubert_large", "wavlm_large")}
    assert 94 < millions["hubert_base"] < 95.5 and 94 < millions["wavlm_base_plus"] < 95.5
    assert 315 < millions["hubert_large"] < 318 and 315 < millions["wavlm_large"] < 318
    assert preset("hubert_xlarge").hidden_size == 1280 and preset("hubert_xlarge").num_layers == 48
    assert preset("wav2vec2_large_lv60").pre_norm and not preset("wav2vec2_base").pre_norm


def test_bad_input():
    model = build_encoder(preset("tiny_hubert")).eval()
    with pytest.raises(ValueError, match=r"expected waveforms of shape \(batch, samples\)"):
        model.extract_features(torch.randn(8000))
    with pytest.raises(ValueError, match="wav_lens must be within"):
        model.extract_features(torch.randn(2, 8000), torch.tensor([8000, 9000]))
    # the tiny front end's receptive field is 10 + 5*7 + 40*7 = 325 samples
    with pytest.raises(ValueError, match="324 samples is shorter than the front end's receptive field"):
        model.extract_features(torch.randn(2, 8000), torch.tensor([8000, 324]))
    with pytest.raises(ValueError, match="300 samples is shorter"):
        model.extract_features(torch.randn(1, 300))
    with torch.no_grad():
        assert model.extract_features(torch.randn(1, 325)).lengths.tolist() == [1]
    with pytest.raises(ValueError, match="unknown encoder preset 'hubert_huge'; valid: hubert_base"):
        preset("hubert_huge")
    assert set(PRESETS) >= {"hubert_base", "hubert_large", "hubert_xlarge", "wavlm_base", "wavlm_base_plus", "wavlm_large", "wav2vec2_base", "wav2vec2_large_lv60"}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_inference_front_end_equals_the_training_path(variant):
    """Inference runs the conv stack as GEMMs with the first norm folded in; training runs convs."""
    name, overrides = VARIANTS[variant]
    model = _perturbed(name, conv_layers=[(48, 10, 5), (48, 3, 2), (48, 3, 2), (48, 2, 2)], **overrides)
    wavs, lens = torch.randn(3, 12000), torch.tensor([12000, 8000, 3000])
    with torch.no_grad():
        ref, ref_lens = model.feature_extractor._forward_conv(wavs, lens)  # torch's conv1d
        got, got_lens = model.feature_extractor(wavs, lens)  # GEMM path
    assert torch.equal(ref_lens, got_lens)
    for i in range(3):
        n = int(ref_lens[i])
        torch.testing.assert_close(got[i, :n], ref[i, :n], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("block", [7, 64, 10_000])
def test_blocked_front_end_equals_the_training_path_at_any_block_size(block, monkeypatch):
    """The first conv layers run blockwise over time in inference; ragged last blocks included."""
    from speechssl.models.components import ConvFeatureExtractor

    monkeypatch.setattr(ConvFeatureExtractor, "BLOCK_FRAMES", block)
    model = _perturbed("tiny_hubert", conv_layers=[(40, 10, 5), (40, 3, 2), (40, 3, 2), (40, 3, 2), (40, 2, 2), (40, 2, 2)])
    wavs, lens = torch.randn(2, 16000), torch.tensor([16000, 9001])
    with torch.no_grad():
        ref, ref_lens = model.feature_extractor._forward_conv(wavs, lens)
        got, got_lens = model.feature_extractor(wavs, lens)
    assert torch.equal(ref_lens, got_lens)
    for i in range(2):
        n = int(ref_lens[i])
        torch.testing.assert_close(got[i, :n], ref[i, :n], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cpu_training_front_end_equals_torch_conv_in_values_and_gradients(variant, padded):
    """On CPU in fp32 with autograd, the front end runs channels-last with a GEMM per tap forward
    and backward; its outputs and every gradient equal torch's conv1d path."""
    name, overrides = VARIANTS[variant]
    model = _perturbed(name, conv_layers=[(48, 10, 5), (48, 3, 2), (48, 3, 2), (48, 2, 2)], **overrides)
    fe = model.feature_extractor
    wavs = torch.randn(3, 12000)
    lens = torch.tensor([12000, 8000, 3000]) if padded else None
    grads = []
    for forward in (fe._forward_conv, fe.forward):
        out, out_lens = forward(wavs, lens)
        out_lens = torch.full((3,), out.shape[1]) if lens is None else out_lens
        valid = torch.arange(out.shape[1])[None, :, None] < out_lens[:, None, None]
        weight = torch.linspace(-1, 1, out.numel()).reshape(out.shape)  # an uneven upstream gradient
        (out * weight * valid).sum().backward()
        grads.append(({n: p.grad.clone() for n, p in fe.named_parameters()}, out.detach(), out_lens))
        fe.zero_grad(set_to_none=True)
    (g_ref, ref, ref_lens), (g_got, got, got_lens) = grads
    assert torch.equal(ref_lens, got_lens)
    for i in range(3):
        n = int(ref_lens[i])
        torch.testing.assert_close(got[i, :n], ref[i, :n], atol=1e-5, rtol=1e-4)
    for n in g_ref:
        # fp32 sums over thousands of frames: 1e-5 of the gradient's size (float64 agrees to 1e-13)
        torch.testing.assert_close(g_got[n], g_ref[n], atol=1e-5 * float(g_ref[n].abs().max()), rtol=1e-4, msg=n)


@pytest.mark.parametrize("conv_bias", [False, True])
@pytest.mark.parametrize("lengths", [None, [40, 17, 0]])
def test_fused_first_conv_and_channel_norm_equal_conv1d_and_masked_channel_norm(lengths, conv_bias):
    """CPU training's first layer: conv and per-channel norm fused, statistics from the frames'
    covariance, hand-written backward. Its values and gradients equal conv1d + MaskedChannelNorm
    (float64), padded frames (which get an upstream gradient too) and an empty item included, and
    pass gradcheck."""
    from speechssl.models.components import MaskedChannelNorm, _FirstConvChannelNorm

    torch.manual_seed(0)
    conv = torch.nn.Conv1d(1, 6, 10, stride=5, bias=conv_bias).double()
    norm = MaskedChannelNorm(6).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    wavs = torch.randn(3, 205, dtype=torch.float64) + 0.3  # 40 frames
    n = None if lengths is None else torch.tensor(lengths)
    params = (conv.weight, norm.weight, norm.bias) + ((conv.bias,) if conv_bias else ())
    ref = norm(conv(wavs[:, None, :]), n).transpose(1, 2)  # (B, T, C)
    got = _FirstConvChannelNorm.apply(wavs, conv.weight, conv.bias, norm.weight, norm.bias, n, 5, norm.eps)
    torch.testing.assert_close(got, ref)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b)
    fused = lambda w, gam, bet, *cb: _FirstConvChannelNorm.apply(wavs, w, cb[0] if cb else None, gam, bet, n, 5, norm.eps)  # noqa: E731
    assert torch.autograd.gradcheck(fused, params)


def test_training_path_has_gradients():
    model = build_encoder(preset("tiny_wavlm")).train()
    out = model.extract_features(torch.randn(2, 8000), torch.tensor([8000, 6000]))
    out.last_hidden_state.sum().backward()
    assert model.feature_extractor.layers[0].conv.weight.grad.abs().sum() > 0
    assert model.encoder.relative_position.embedding.weight.grad.abs().sum() > 0


def test_waveform_normalisation_matches_fairseq_and_ignores_padding():
    from speechssl.models.encoder import normalize_waveforms

    wavs = 3.0 + 2.0 * torch.randn(3, 8000)
    lens = torch.tensor([8000, 5000, 1200])
    out = normalize_waveforms(wavs, lens)
    for i, n in enumerate(lens.tolist()):
        ref = torch.nn.functional.layer_norm(wavs[i, :n], (n,))  # fairseq: F.layer_norm(wav, wav.shape)
        torch.testing.assert_close(out[i, :n], ref, atol=1e-5, rtol=1e-5)
        assert torch.all(out[i, n:] == 0)
    model = _perturbed("tiny_hubert", normalize_waveform=True)
    with torch.no_grad():
        batch = model.extract_features(wavs, lens)
        alone = model.extract_features(wavs[2:, :1200])
    torch.testing.assert_close(batch.hidden_states[-1][2, : alone.lengths[0]], alone.hidden_states[-1][0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["tiny_hubert", "tiny_wavlm"])
def test_bf16_autocast_stays_close_to_fp32(name):
    """The mixed-precision path (CPU autocast here; GPU autocast runs the same modules)."""
    model = _perturbed(name, pre_norm=True, extractor_mode="layer_norm")
    wavs, lens = torch.randn(2, 16000), torch.tensor([16000, 11000])
    with torch.no_grad():
        ref = model.extract_features(wavs, lens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.extract_features(wavs, lens)
    assert torch.equal(ref.lengths, low.lengths)
    for a, b in zip(ref.hidden_states, low.hidden_states):
        for i, n in enumerate(ref.lengths.tolist()):
            err = (b[i, :n].float() - a[i, :n]).norm() / a[i, :n].norm()
            assert torch.isfinite(b[i, :n]).all() and err < 0.05, float(err)


@pytest.mark.parametrize("kernel,stride", [(3, 2), (2, 2), (2, 3), (10, 5), (4, 1)])
def test_strided_conv_gemm_equals_conv1d_forward_and_backward(kernel, stride):
    """The channels-last GEMM conv of CPU training, for kernels longer, equal to and shorter than the stride."""
    from speechssl.models.components import _StridedConv

    torch.manual_seed(0)
    x = torch.randn(2, 50, 6, requires_grad=True)
    w = torch.randn(5, 6, kernel, requires_grad=True)
    bias = torch.randn(5, requires_grad=True)
    y = _StridedConv.apply(x, w, bias, stride)
    g = torch.randn_like(y)
    y.backward(g)
    x_ref = x.detach().transpose(1, 2).requires_grad_(True)  # (B, T, C) -> (B, C, T)
    w_ref, b_ref = w.detach().requires_grad_(True), bias.detach().requires_grad_(True)
    y_ref = torch.nn.functional.conv1d(x_ref, w_ref, b_ref, stride=stride)
    y_ref.backward(g.transpose(1, 2))
    torch.testing.assert_close(y, y_ref.transpose(1, 2))
    torch.testing.assert_close(x.grad, x_ref.grad.transpose(1, 2))
    torch.testing.assert_close(w.grad, w_ref.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bias.grad, b_ref.grad, rtol=1e-4, atol=1e-4)
