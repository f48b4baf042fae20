"""Adapters: exact no-op at initialisation, LoRA merge/unmerge, adapter banks, freezing policies,
adapter-only checkpoints (round trip, refusal of another base), base state-dict keys unchanged,
padded batch vs single item."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from speechssl.adapters import (
    AdapterConfig,
    LoRALinear,
    active_adapter,
    adapter_parameters,
    add_adapter,
    base_fingerprint,
    base_state_dict,
    freeze,
    list_adapters,
    load_adapter,
    merge_adapter,
    merged_adapter,
    read_adapter_metadata,
    remove_adapter,
    save_adapter,
    set_active_adapter,
    trainable_report,
    unmerge_adapter,
    use_adapter,
)
from speechssl.features.layer import encoder_fingerprint
from speechssl.models import build_encoder, preset
from test_encoder import _perturbed

VARIANTS = {
    "hubert_post_ln": ("tiny_hubert", {}),
    "hubert_pre_ln": ("tiny_hubert", dict(pre_norm=True)),
    "wavlm_post_ln": ("tiny_wavlm", {}),
}

CONFIGS = {
    "houlsby": AdapterConfig(bottleneck="houlsby", bottleneck_dim=8),
    "pfeiffer": AdapterConfig(bottleneck="pfeiffer", bottleneck_dim=8, layers="top:1"),
    "lora": AdapterConfig(lora_targets=("q", "k", "v", "out", "fc1", "fc2"), lora_rank=4, layers=(0,)),
    "houlsby+lora": AdapterConfig(bottleneck="houlsby", bottleneck_dim=8, lora_targets=("q", "v"), lora_rank=2),
}


def _encoder(variant: str = "hubert_post_ln", seed: int = 0):
    """A tiny encoder with norms and biases moved off their init values (so that mistakes show)."""
    name, overrides = VARIANTS[variant]
    return _perturbed(name, seed, **overrides)


def _perturb_adapter(encoder, name: str, seed: int = 1) -> None:
    """Give the adapter's zero-initialised halves non-zero values, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter_parameters(encoder, name).values():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _wavs(batch: int = 2, samples: int = 8000, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


def _states(encoder, wavs, lens=None) -> list[torch.Tensor]:
    with torch.no_grad():
        out = encoder.extract_features(wavs, lens)
    return out.hidden_states + [out.last_hidden_state]


def _train(encoder, steps: int = 3, seed: int = 0) -> None:
    params = [p for p in encoder.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-2)
    encoder.train()
    for step in range(steps):
        loss = encoder.extract_features(_wavs(seed=seed + step)).last_hidden_state.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    encoder.eval()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("kind", list(CONFIGS))
def test_initialised_adapter_is_an_exact_no_op(variant, kind):
    model = _encoder(variant)
    wavs = _wavs()
    base = _states(model, wavs)
    add_adapter(model, "a", CONFIGS[kind], generator=torch.Generator().manual_seed(0))
    assert active_adapter(model) == "a"
    for b, a in zip(base, _states(model, wavs)):
        assert torch.equal(b, a)


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_base_state_dict_keys_unchanged_and_remove_restores_the_plain_model(kind):
    plain = _encoder()
    model = _encoder()
    keys = list(plain.state_dict())
    wavs = _states(model, _wavs())
    add_adapter(model, "a", CONFIGS[kind])
    add_adapter(model, "b", CONFIGS["houlsby+lora"], activate=False)
    _perturb_adapter(model, "a")
    full = model.state_dict()
    assert set(keys) < set(full)
    assert list(base_state_dict(model)) == keys
    for k in keys:
        assert torch.equal(full[k], plain.state_dict()[k])
    assert base_fingerprint(model) == encoder_fingerprint(plain)
    remove_adapter(model, "a")
    remove_adapter(model, "b")
    assert list(model.state_dict()) == keys and list_adapters(model) == {}
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert all("adapters" not in layer._modules for layer in model.encoder.layers)
    assert all(not layer.attention._forward_hooks and not layer.feed_forward._forward_hooks for layer in model.encoder.layers)
    for b, a in zip(wavs, _states(model, _wavs())):
        assert torch.equal(b, a)


def test_hidden_states_with_adapters_are_deterministic_and_placement_is_as_documented():
    model = _encoder()
    add_adapter(model, "h", AdapterConfig(bottleneck="houlsby", bottleneck_dim=4, layers="top:1"))
    add_adapter(model, "p", AdapterConfig(bottleneck="pfeiffer", bottleneck_dim=4, layers=[0]), activate=False)
    top, first = model.encoder.layers[1].adapters, model.encoder.layers[0].adapters
    assert set(top["h"]._modules) == {"attention", "feed_forward"}
    assert set(first["p"]._modules) == {"feed_forward"}
    assert "h" not in first and "p" not in top
    with pytest.raises(ValueError, match="out of range"):
        add_adapter(model, "x", AdapterConfig(bottleneck="pfeiffer", layers=(5,)))
    with pytest.raises(ValueError, match="already has"):
        add_adapter(model, "h", AdapterConfig(bottleneck="pfeiffer"))
    with pytest.raises(ValueError, match="adapter names"):
        add_adapter(model, "a.b", AdapterConfig(bottleneck="pfeiffer"))
    with pytest.raises(ValueError, match="adapter names"):
        add_adapter(model, "train", AdapterConfig(bottleneck="pfeiffer"))


def test_merge_equals_unmerged_and_unmerge_restores_the_weights_exactly():
    model = _encoder("wavlm_post_ln")
    add_adapter(model, "a", CONFIGS["houlsby+lora"])
    add_adapter(model, "b", CONFIGS["lora"])  # active: only b is merged
    _perturb_adapter(model, "a", seed=1)
    _perturb_adapter(model, "b", seed=2)
    before = {k: v.clone() for k, v in base_state_dict(model).items()}
    fingerprint = base_fingerprint(model)
    wavs = _wavs()
    unmerged = _states(model, wavs)
    assert merge_adapter(model) == 6  # six linears in layer 0
    assert merged_adapter(model) == "b"
    q = model.encoder.layers[0].attention.q_proj
    assert torch.allclose(q.weight, before["encoder.layers.0.attention.q_proj.weight"] + q.lora["b"].delta(), atol=1e-6)
    assert not torch.equal(q.weight, before["encoder.layers.0.attention.q_proj.weight"])
    for m, u in zip(_states(model, wavs), unmerged):
        torch.testing.assert_close(m, u, rtol=1e-5, atol=1e-5)
    assert base_fingerprint(model) == fingerprint  # on the unmerged weights
    with pytest.raises(ValueError, match="merged"):
        set_active_adapter(model, "a")
    with use_adapter(model, "b"):  # the merged one itself: allowed
        pass
    assert unmerge_adapter(model) == 6 and merged_adapter(model) is None
    for k, v in base_state_dict(model).items():
        assert torch.equal(v, before[k]), k
    assert base_fingerprint(model) == fingerprint
    for m, u in zip(_states(model, wavs), unmerged):
        assert torch.equal(m, u)
    # switching is allowed again; merging "a" folds only a's LoRA (its bottlenecks keep running)
    set_active_adapter(model, "a")
    expect = _states(model, wavs)
    assert merge_adapter(model) == 4  # q and v in two layers
    for m, u in zip(_states(model, wavs), expect):
        torch.testing.assert_close(m, u, rtol=1e-5, atol=1e-5)
    remove_adapter(model, "a")  # removing the merged adapter unmerges it first
    for k, v in base_state_dict(model).items():
        assert torch.equal(v, before[k]), k
    assert active_adapter(model) is None and merged_adapter(model) is None


def test_lora_linear_unmerge_after_the_weight_changed_subtracts_the_delta():
    torch.manual_seed(0)
    lin = LoRALinear.from_linear(nn.Linear(8, 6))
    lin.add_pair("a", rank=2, alpha=4.0)
    with torch.no_grad():
        lin.lora["a"].B.normal_()
    lin.set_active("a")
    x = torch.randn(3, 8)
    y = lin(x)
    assert lin.merge()
    torch.testing.assert_close(lin(x), y)
    with torch.no_grad():
        lin.weight.add_(1.0)  # changed while merged: the kept copy is stale
    lin.unmerge()
    torch.testing.assert_close(lin(x), y + 1.0 * x.sum(-1, keepdim=True))


def test_frozen_policy_gives_gradients_to_adapter_parameters_only():
    model = _encoder("hubert_pre_ln")
    add_adapter(model, "a", CONFIGS["houlsby+lora"])
    report = freeze(model, "frozen")
    assert report.trainable == sum(p.numel() for p in adapter_parameters(model).values())
    _train(model, steps=1)  # moves the zero-initialised halves, so that every adapter parameter gets a gradient
    model.zero_grad(set_to_none=True)
    model.extract_features(_wavs()).last_hidden_state.square().mean().backward()
    adapter_ids = {id(p) for p in adapter_parameters(model).values()}
    for name, p in model.named_parameters():
        if id(p) in adapter_ids:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


@pytest.mark.parametrize("variant", ["hubert_post_ln", "hubert_pre_ln"])
def test_freezing_policies(variant):
    model = _encoder(variant)
    add_adapter(model, "a", AdapterConfig(bottleneck="pfeiffer", bottleneck_dim=4))
    adapter_ids = {id(p) for p in adapter_parameters(model).values()}

    def trainable(module):
        return all(p.requires_grad for p in module.parameters())

    def frozen(module):
        return not any(p.requires_grad for p in module.parameters())

    freeze(model, "frozen_feature_encoder")
    assert frozen(model.feature_extractor) and trainable(model.feature_projection) and trainable(model.encoder)
    freeze(model, "top:1")
    top_ids = {id(p) for p in model.encoder.layers[1].parameters()}
    norm_ids = {id(p) for p in model.encoder.layer_norm.parameters()}
    for name, p in model.named_parameters():
        expect = id(p) in top_ids or id(p) in adapter_ids or (model.config.pre_norm and id(p) in norm_ids)
        assert p.requires_grad == expect, name
    freeze(model, "none")
    assert trainable(model)
    report = freeze(model, "frozen")
    assert report.by_group["adapter:a"] == (report.trainable, report.trainable)
    assert report.by_group["feature_extractor"][0] == 0
    assert str(report).startswith("trainable ") and "%" in str(report)
    with pytest.raises(ValueError, match="frozen_feature_encoder"):
        freeze(model, "partial")
    with pytest.raises(ValueError, match="1..2"):
        freeze(model, "top:3")


def test_houlsby_32_on_hubert_base_trains_under_ten_percent_and_saves_small(tmp_path):
    model = build_encoder(preset("hubert_base"))
    add_adapter(model, "lang", AdapterConfig(bottleneck="houlsby", bottleneck_dim=32))
    report = freeze(model, "frozen")
    assert report.trainable == 12 * 2 * (768 * 32 + 32 + 32 * 768 + 768)
    assert report.fraction < 0.10
    assert report == trainable_report(model)
    assert str(report) == "trainable 1.2M of 95.6M parameters (1.25%)"
    path = save_adapter(model, "lang", tmp_path / "lang.safetensors")
    base_bytes = sum(t.numel() * t.element_size() for t in base_state_dict(model).values())
    assert path.stat().st_size < 0.05 * base_bytes


def test_switching_adapters_changes_only_the_adapted_layers():
    model = _encoder("wavlm_post_ln")
    cfg = AdapterConfig(bottleneck="houlsby", bottleneck_dim=8, lora_targets=("q", "fc1"), layers="top:1")
    add_adapter(model, "en", cfg, activate=False)
    add_adapter(model, "fr", cfg, activate=False)
    _perturb_adapter(model, "en", seed=1)
    _perturb_adapter(model, "fr", seed=2)
    wavs = _wavs()
    outs = {}
    for name in (None, "en", "fr"):
        with use_adapter(model, name):
            outs[name] = _states(model, wavs)
        assert active_adapter(model) is None  # restored
    L = model.num_layers
    for name in ("en", "fr"):
        for i in range(L):  # everything below the adapted top layer
            assert torch.equal(outs[name][i], outs[None][i])
        assert not torch.allclose(outs[name][L], outs[None][L])
    assert not torch.allclose(outs["en"][L], outs["fr"][L])
    set_active_adapter(model, "fr")
    assert torch.equal(_states(model, wavs)[L], outs["fr"][L])
    with pytest.raises(ValueError, match="no adapter named 'de'.*en, fr"):
        set_active_adapter(model, "de")


@pytest.mark.parametrize("variant", ["hubert_post_ln", "wavlm_post_ln"])
def test_padded_batch_equals_items_alone_with_adapters(variant):
    model = _encoder(variant)
    add_adapter(model, "a", CONFIGS["houlsby+lora"])
    _perturb_adapter(model, "a")
    wavs = _wavs(3, 12000)
    lens = torch.tensor([12000, 9000, 5000])
    with torch.no_grad():
        out = model.extract_features(wavs, lens)
        for i in range(3):
            alone = model.extract_features(wavs[i : i + 1, : lens[i]])
            n = int(out.lengths[i])
            for batched, single in zip(out.hidden_states, alone.hidden_states):
                torch.testing.assert_close(batched[i, :n], single[0], rtol=1e-4, atol=1e-4)


def test_save_load_round_trip_refuses_another_base_and_is_small(tmp_path):
    model = _encoder("hubert_pre_ln")
    add_adapter(model, "fr", CONFIGS["houlsby+lora"])
    freeze(model, "frozen")
    _train(model, steps=3)
    path = save_adapter(model, "fr", tmp_path / "fr.safetensors")
    meta = read_adapter_metadata(path)
    assert meta["name"] == "fr" and meta["base_fingerprint"] == base_fingerprint(model)
    assert meta["num_layers"] == "2" and meta["hidden_size"] == "32"

    fresh = build_encoder(preset("tiny_hubert", pre_norm=True)).eval()
    fresh.load_state_dict(base_state_dict(model))
    assert load_adapter(fresh, path) == "fr"
    assert list_adapters(fresh) == {"fr": CONFIGS["houlsby+lora"]}
    wavs = _wavs()
    for a, b in zip(_states(model, wavs), _states(fresh, wavs)):
        assert torch.equal(a, b)
    with use_adapter(fresh, None):
        base = _states(fresh, wavs)
    assert not torch.allclose(base[-1], _states(fresh, wavs)[-1])  # the trained adapter does something

    load_adapter(fresh, path, name="fr2", activate=False)  # the same weights under another name
    with use_adapter(fresh, "fr2"):
        assert torch.equal(_states(fresh, wavs)[-1], _states(model, wavs)[-1])

    other = _encoder("hubert_pre_ln", seed=1)
    with pytest.raises(ValueError) as err:
        load_adapter(other, path)
    msg = str(err.value)
    assert base_fingerprint(model)[:12] in msg and base_fingerprint(other)[:12] in msg and str(path) in msg
    assert list_adapters(other) == {}
    with pytest.raises(ValueError, match="width 32 with 2 layers"):
        load_adapter(build_encoder(preset("tiny_hubert", pre_norm=True, num_layers=3)), path)

    # saved while merged: the same base fingerprint
    merge_adapter(model)
    merged_path = save_adapter(model, "fr", tmp_path / "merged.safetensors")
    assert read_adapter_metadata(merged_path)["base_fingerprint"] == meta["base_fingerprint"]


def test_missing_or_foreign_checkpoints_are_refused(tmp_path):
    model = _encoder()
    with pytest.raises(FileNotFoundError):
        load_adapter(model, tmp_path / "none.safetensors")
    from speechssl.checkpoint import save_encoder

    save_encoder(model, tmp_path / "encoder.safetensors")
    with pytest.raises(ValueError, match="not a speechssl adapter checkpoint"):
        load_adapter(model, tmp_path / "encoder.safetensors")
    add_adapter(model, "a", CONFIGS["pfeiffer"])
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_adapter(model, "a", tmp_path / "a.pt")
    assert not list(tmp_path.glob(".*partial*"))


def test_deepcopy_gives_an_independent_encoder():
    model = _encoder()
    add_adapter(model, "a", CONFIGS["houlsby+lora"])
    _perturb_adapter(model, "a")
    wavs = _wavs()
    expect = _states(model, wavs)
    twin = copy.deepcopy(model)
    set_active_adapter(twin, None)
    assert active_adapter(model) == "a"
    for a, b in zip(_states(model, wavs), expect):
        assert torch.equal(a, b)
    set_active_adapter(twin, "a")
    for a, b in zip(_states(twin, wavs), expect):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "needs a bottleneck"),
        (dict(bottleneck="parallel"), "bottleneck must be one of"),
        (dict(lora_targets="qv"), "the string"),
        (dict(lora_targets=("q", "query")), "unknown lora_targets"),
        (dict(lora_targets=("q", "q")), "duplicates"),
        (dict(bottleneck="houlsby", bottleneck_dim=0), "bottleneck_dim"),
        (dict(lora_targets=("q",), lora_rank=0), "lora_rank"),
        (dict(lora_targets=("q",), lora_alpha=0.0), "lora_alpha"),
        (dict(bottleneck="houlsby", dropout=1.0), "dropout"),
        (dict(bottleneck="houlsby", layers="top:0"), "top:k"),
        (dict(bottleneck="houlsby", layers="some"), "top:k"),
        (dict(bottleneck="houlsby", layers=(-1,)), "indices"),
        (dict(bottleneck="houlsby", layers=(1, 1)), "duplicates"),
    ],
)
def test_adapter_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdapterConfig(**kwargs)


def test_adapter_config_resolves_layers():
    assert AdapterConfig(bottleneck="pfeiffer").resolve_layers(4) == (0, 1, 2, 3)
    assert AdapterConfig(bottleneck="pfeiffer", layers="top:2").resolve_layers(4) == (2, 3)
    assert AdapterConfig(bottleneck="pfeiffer", layers=[3, 1]).resolve_layers(4) == (1, 3)
    with pytest.raises(ValueError, match="has 4 layers"):
        AdapterConfig(bottleneck="pfeiffer", layers="top:5").resolve_layers(4)
