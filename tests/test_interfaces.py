"""Interfaces from hidden states to a head: weighted sum (init = mean, learns the useful layer),
hierarchical conv (shapes, depth, frame independence, padded batch, gradients), builder errors,
layer-weight plots (PNG, atomic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechssl.interfaces import ConvInterface, LastLayer, WeightedSum, build_interface, plot_layer_weights

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _layers(num_layers: int, b: int = 2, t: int = 5, c: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # different scales and offsets per layer, so that layer norm has something to do
    return [(l + 1) * torch.randn(b, t, c, generator=g) + l for l in range(num_layers)]


# --- WeightedSum ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layer_norm", [False, True])
def test_weighted_sum_at_init_is_the_mean(layer_norm):
    hs = _layers(4)
    ws = WeightedSum(4, 8, layer_norm=layer_norm)
    ref = torch.zeros_like(hs[0])
    for h in hs:  # written out: s3prl normalises each layer over C without affine parameters
        if layer_norm:
            mu = h.mean(-1, keepdim=True)
            var = h.var(-1, unbiased=False, keepdim=True)
            h = (h - mu) / torch.sqrt(var + 1e-5)
        ref = ref + h / len(hs)
    torch.testing.assert_close(ws(hs), ref)
    torch.testing.assert_close(ws(torch.stack(hs)), ref)  # stacked (L, B, T, C) input
    torch.testing.assert_close(ws(tuple(hs)), ref)


def test_weighted_sum_learns_the_useful_layer():
    torch.manual_seed(0)
    hs = _layers(5, b=4, t=10, c=8)
    target = hs[3]
    ws = WeightedSum(5, 8)
    opt = torch.optim.Adam(ws.parameters(), lr=0.1)
    for _ in range(50):
        loss = F.mse_loss(ws(hs), target)
        opt.zero_grad()
        loss.backward()
        assert ws.weights.grad is not None and ws.weights.grad.abs().sum() > 0
        opt.step()
    w = ws.layer_weights()
    assert int(w.argmax()) == 3
    assert w[3] > 0.5
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))
    assert w.device.type == "cpu" and not w.requires_grad


def test_weighted_sum_errors_name_expected_and_found():
    ws = WeightedSum(4, 8)
    with pytest.raises(ValueError, match="expected 4 hidden states.*found 3"):
        ws(_layers(3))
    with pytest.raises(ValueError, match="dim=8, found width 6"):
        ws(_layers(4, c=6))
    with pytest.raises(ValueError, match="found shapes"):
        ws([torch.randn(2, 5, 8), torch.randn(2, 6, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 8)])
    with pytest.raises(ValueError, match=r"found a tensor of shape \(2, 5, 8\)"):
        ws(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="num_layers >= 1, found 0"):
        WeightedSum(0, 8)


def test_weighted_sum_over_real_encoder_hidden_states():
    from speechssl.models import build_encoder, preset

    torch.manual_seed(0)
    enc = build_encoder(preset("tiny_hubert")).eval()
    wavs = torch.randn(2, 16000)
    lens = torch.tensor([16000, 11000])
    with torch.no_grad():
        out = enc.extract_features(wavs, lens)
    ws = WeightedSum(enc.num_layers + 1, enc.hidden_size, layer_norm=True)
    feats = ws(out.hidden_states)
    assert feats.shape == out.hidden_states[0].shape == (2, int(out.lengths.max()), enc.hidden_size)
    feats.sum().backward()
    assert ws.weights.grad is not None and torch.isfinite(ws.weights.grad).all()
    conv = ConvInterface(enc.num_layers + 1, enc.hidden_size, out_dim=16)
    assert conv(out.hidden_states).shape == (2, feats.shape[1], 16)


# --- ConvInterface -------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [2, 3, 13, 25])
def test_conv_shape_and_depth(num_layers):
    conv = ConvInterface(num_layers, 8, out_dim=6, hidden_dim=10)
    out = conv(_layers(num_layers, b=3, t=7))
    assert out.shape == (3, 7, 6)
    assert len(conv.blocks) == math.ceil(math.log2(num_layers))
    assert conv.padded_layers == 2 ** len(conv.blocks) >= num_layers


@pytest.mark.parametrize("num_layers", [2, 3, 13, 25])
def test_conv_parameter_count_matches_docstring_formula(num_layers):
    c, h, o = 8, 10, 6
    k = math.ceil(math.log2(num_layers))
    if k == 1:
        expected = 2 * c * o + o
    else:
        expected = (2 * c * h + h) + (k - 2) * (2 * h * h + h) + (2 * h * o + o) + (k - 1) * 2 * h
    conv = ConvInterface(num_layers, c, out_dim=o, hidden_dim=h)
    assert sum(p.numel() for p in conv.parameters()) == expected


def test_conv_frames_are_independent():
    torch.manual_seed(0)
    conv = ConvInterface(13, 8).eval()
    hs = torch.stack(_layers(13, t=6))  # (L, B, T, C)
    changed = hs.clone()
    changed[:, :, 2] += torch.randn_like(changed[:, :, 2])
    with torch.no_grad():
        a, b = conv(hs), conv(changed)
    diff = (a - b).abs().amax(dim=(0, 2))  # (T,)
    assert diff[2] > 1e-3
    assert torch.all(diff[torch.arange(6) != 2] == 0)


def test_conv_padded_batch_equals_items_alone():
    torch.manual_seed(0)
    conv = ConvInterface(5, 8, out_dim=4).eval()
    lengths = [7, 4, 2]
    items = [torch.stack(_layers(5, b=1, t=n, seed=i)) for i, n in enumerate(lengths)]  # each (L, 1, T_i, C)
    batch = torch.full((5, 3, 7, 8), 123.0)  # padding with garbage, not zeros
    for i, (x, n) in enumerate(zip(items, lengths)):
        batch[:, i : i + 1, :n] = x
    with torch.no_grad():
        out = conv(batch)
        for i, (x, n) in enumerate(zip(items, lengths)):
            torch.testing.assert_close(out[i : i + 1, :n], conv(x))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_conv_gradients_reach_every_layer(layer_norm):
    torch.manual_seed(0)
    hs = [h.requires_grad_() for h in _layers(13)]
    conv = ConvInterface(13, 8, layer_norm=layer_norm)
    conv(hs).pow(2).sum().backward()
    for i, h in enumerate(hs):
        assert h.grad is not None and h.grad.abs().sum() > 0, f"no gradient at layer {i}"
    assert all(p.grad is not None for p in conv.parameters())


def test_conv_errors():
    with pytest.raises(ValueError, match="num_layers >= 2, found 1"):
        ConvInterface(1, 8)
    with pytest.raises(ValueError, match="expected 13 hidden states.*found 12"):
        ConvInterface(13, 8)(_layers(12))


# --- build_interface ----------------------------------------------------------------------------


def test_build_interface_kinds_and_errors():
    hs = _layers(3)
    assert isinstance(build_interface("weighted_sum", 3, 8, layer_norm=True), WeightedSum)
    conv = build_interface("conv", 3, 8, out_dim=4)
    assert isinstance(conv, ConvInterface) and conv(hs).shape == (2, 5, 4) and conv.output_size == 4
    last = build_interface("last", 3, 8)
    assert isinstance(last, LastLayer) and last(hs) is hs[-1] and last.output_size == 8
    torch.testing.assert_close(last(torch.stack(hs)), hs[-1])
    with pytest.raises(ValueError, match="expected 3 hidden states.*found 2"):
        last(hs[:2])
    with pytest.raises(ValueError, match=r"unknown interface 'attention'.*\['conv', 'last', 'weighted_sum'\]"):
        build_interface("attention", 3, 8)


# --- plot_layer_weights -------------------------------------------------------------------------


def test_plot_layer_weights_writes_png(tmp_path):
    ws = WeightedSum(13, 8)
    weights = {"asr": ws.layer_weights(), "sid": np.linspace(0, 1, 13) / 6.5, "er": torch.softmax(torch.randn(25), 0)}
    path = plot_layer_weights(weights, tmp_path / "plots" / "weights.png", title="layer weights")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 1000
    single = plot_layer_weights(ws.layer_weights(), tmp_path / "one.png")
    assert single.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["one.png", "weights.png"]


def test_plot_layer_weights_leaves_nothing_on_error(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    with pytest.raises(ValueError, match="finite"):
        plot_layer_weights({"asr": torch.tensor([0.5, float("nan")])}, tmp_path / "w.png")
    with pytest.raises(ValueError, match="1-D"):
        plot_layer_weights(torch.ones(2, 3), tmp_path / "w.png")
    with pytest.raises(ValueError, match="empty"):
        plot_layer_weights({}, tmp_path / "w.png")

    def failing_savefig(self, fname, **kw):  # write half a file, then fail
        with open(fname, "wb") as f:
            f.write(PNG_SIGNATURE)
        raise OSError("disk full")

    (tmp_path / "old.png").write_bytes(b"old")
    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_layer_weights(torch.ones(3) / 3, tmp_path / "old.png")
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]
    assert (tmp_path / "old.png").read_bytes() == b"old"
