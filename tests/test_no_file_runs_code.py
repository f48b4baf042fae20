"""No file runs code: checkpoints that ask the unpickler for a callable (``os.system``,
``builtins.exec``, ``subprocess.Popen``, a payload nested in ``extra_state`` beside a valid layout)
are refused by every entry point that reads an encoder or checkpoint, with the path and the global
named, and a marker file proves that nothing ran; real fairseq layouts (numpy RNG state,
OrderedDicts, fp16 weights, pre-hydra ``Namespace``) load without a flag; ``--allow-pickle`` /
``allow_pickle=True`` reads fully, with a warning."""

from __future__ import annotations

import builtins
import logging
import os
import subprocess
from argparse import Namespace
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from test_convert_fairseq import WAVLM_VARIANTS, fairseq_state, model_cfg
from torchaudio_refs import tiny_torchaudio

import speechssl
from speechssl.convert.fairseq import encoder_from_fairseq, read_fairseq_checkpoint


class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


class _Popen:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


def _layout(seed: int = 6) -> dict:
    """A valid fairseq HuBERT checkpoint with what real ones carry beside the weights."""
    model = tiny_torchaudio("wav2vec2", seed=seed)
    return {
        "cfg": {"common": {"fp16": True, "seed": 1}, "task": {"_name": "hubert_pretraining", "normalize": False}, "model": model_cfg("hubert")},
        "model": OrderedDict(fairseq_state(model, mode="group_norm")),
        "optimizer_history": [{"criterion_name": "HubertCriterion", "optimizer_name": "FairseqAdam", "num_updates": 400000}],
        "last_optimizer_state": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4)}}, "param_groups": [{"lr": 5e-4, "params": [0]}]},
        "extra_state": {
            "epoch": 3,
            "previous_best": np.float64(2.5),
            "train_iterator": {"epoch": 3, "iterations_in_epoch": 17, "shuffle": True},
            "rng": np.random.RandomState(0).get_state(),  # ('MT19937', uint32 array, int, int, float)
            "metrics": OrderedDict(train=OrderedDict(loss=np.float32(1.25), count=np.int64(40))),
        },
    }


PAYLOADS = {"os.system": _System, "builtins.exec": _Exec, "subprocess.Popen": _Popen}


@pytest.fixture(params=[*PAYLOADS, "nested-in-extra_state", "legacy-format"])
def evil(request, tmp_path) -> tuple[Path, Path]:
    """(checkpoint, marker): the checkpoint runs ``touch marker`` (or the like) when unpickled."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    if request.param in PAYLOADS:
        torch.save({"cfg": {"model": model_cfg("hubert")}, "model": PAYLOADS[request.param](marker)}, path)
    elif request.param == "nested-in-extra_state":  # a valid layout, the payload deep inside
        ckpt = _layout()
        ckpt["extra_state"]["metrics"]["train"]["meter"] = _System(marker)
        torch.save(ckpt, path)
    else:  # torch.save's pre-1.6 format: no zip, the globals cannot be listed beforehand
        ckpt = _layout()
        ckpt["extra_state"]["x"] = _Popen(marker)
        torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    return path, marker


def _refused(message: str, path: Path) -> bool:
    return str(path) in message and "refused" in message and "nothing in it was run" in message


# ------------------------------------------------------------------------ every entry point refuses
def test_python_api_refuses(evil):
    path, marker = evil
    from speechssl.downstream.upstream import UpstreamConfig, load_upstream
    from speechssl.features.build import build_extractor

    for load in (
        lambda: read_fairseq_checkpoint(path),
        lambda: encoder_from_fairseq(path),
        lambda: speechssl.load_encoder(path),
        lambda: build_extractor("layer", encoder=path, layer=1, device="cpu"),
        lambda: load_upstream(UpstreamConfig(path=str(path))),
    ):
        with pytest.raises(ValueError) as e:
            load()
        assert _refused(str(e.value), path), e.value
    assert not marker.exists()


def test_the_global_is_named(tmp_path):
    marker = tmp_path / "PWNED"
    for name, cls in PAYLOADS.items():
        path = tmp_path / f"{name}.pt"
        torch.save({"x": cls(marker)}, path)
        with pytest.raises(ValueError) as e:
            read_fairseq_checkpoint(path)
        asked = str(e.value).split("asks to unpickle ")[1].split(",")[0]
        # the name pickle wrote: os.system is posix.system, protocol 2 maps subprocess to commands
        assert asked.split(".")[-1] == name.split(".")[-1], e.value
    assert not marker.exists()


def _cli(verb: str, argv: list[str], capsys) -> str:
    from importlib import import_module

    rc = import_module(f"speechssl.cli.{verb}").main(argv)
    err = capsys.readouterr().err
    assert rc == 1, err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    return err


def test_cli_verbs_refuse(evil, mini_corpus, layer_kmeans, tmp_path, capsys):
    path, marker = evil
    dev = str(mini_corpus / "cuts_dev.jsonl.gz")
    out = tmp_path / "out"
    assert _refused(_cli("convert", ["--from", "fairseq", str(path), str(out / "x.safetensors")], capsys), path)
    assert not (out / "x.safetensors").exists()
    assert _refused(_cli("features", [dev, str(out / "feats"), "--kind", "layer", "--encoder", str(path), "--layer", "1", "--device", "cpu"], capsys), path)
    assert _refused(
        _cli("kmeans", ["fit", dev, str(out / "km.safetensors"), "--kind", "layer", "--encoder", str(path), "--layer", "1", "--clusters", "4", "--device", "cpu"], capsys),
        path,
    )
    assert _refused(_cli("tokens", ["extract", dev, str(out / "tok"), "--encoder", str(path), "--kmeans", str(layer_kmeans), "--device", "cpu"], capsys), path)
    assert not marker.exists()


@pytest.fixture(scope="module")
def layer_kmeans(mini_corpus, tmp_path_factory) -> Path:
    """A k-means model of layer 1 of a (safe) fairseq checkpoint: what tokens extract needs."""
    from speechssl.cli import kmeans

    folder = tmp_path_factory.mktemp("km")
    torch.save(_layout(), folder / "hubert.pt")
    out = folder / "km.safetensors"
    argv = ["fit", str(mini_corpus / "cuts_dev.jsonl.gz"), str(out), "--encoder", str(folder / "hubert.pt"), "--layer", "1"]
    assert kmeans.main([*argv, "--clusters", "4", "--max-frames", "2000", "--device", "cpu", "-q"]) == 0
    return out


def test_other_converters_refuse(tmp_path, capsys):
    """torchaudio state dicts and Hugging Face pytorch_model.bin go through the same safe load."""
    marker = tmp_path / "PWNED"
    state = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(2), "x": _System(marker)}, state)
    assert _refused(_cli("convert", ["--from", "torchaudio", str(state), str(tmp_path / "a.safetensors"), "--preset", "hubert_base"], capsys), state)
    from speechssl.convert.hf import encoder_to_hf

    torch.save(_layout(), tmp_path / "hubert.pt")
    hf = tmp_path / "hf"
    encoder_to_hf(speechssl.load_encoder(tmp_path / "hubert.pt"), hf)  # a real config.json; weights swapped below
    (hf / "model.safetensors").unlink()
    torch.save({"w": _Exec(marker)}, hf / "pytorch_model.bin")
    assert _refused(_cli("convert", ["--from", "hf", str(hf), str(tmp_path / "b.safetensors")], capsys), hf / "pytorch_model.bin")
    assert not marker.exists()


def test_allow_pickle_reads_fully_with_a_warning(tmp_path, caplog):
    """The one way to run what a file holds: asked for by name."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "trusted.pt"
    ckpt = _layout()
    ckpt["extra_state"]["x"] = _System(marker)
    torch.save(ckpt, path)
    with caplog.at_level(logging.WARNING, logger="speechssl.convert.fairseq"):
        encoder = speechssl.load_encoder(path, allow_pickle=True)
    assert marker.exists()  # it did run: that is what the flag means
    assert "code in this file runs" in caplog.text
    assert encoder.config.family == "hubert"


def test_allow_pickle_is_fairseq_only(tmp_path, capsys):
    err = _cli("convert", ["--from", "hf", str(tmp_path), str(tmp_path / "x.safetensors"), "--allow-pickle"], capsys)
    assert "--allow-pickle applies to --from fairseq only" in err


# ---------------------------------------------------------------- real layouts load without a flag
def test_real_layouts_load_without_a_flag(tmp_path, capsys):
    """Hydra-era dict cfg, pre-hydra Namespace args, unilm WavLM and fine-tuned CTC, each with the
    numpy RNG state, OrderedDicts, numpy scalars and optimizer state real checkpoints carry; in
    the zip format and the legacy one; fp16 weights too."""
    extras = {k: v for k, v in _layout().items() if k not in ("cfg", "model")}
    model = tiny_torchaudio("wav2vec2", seed=6)
    state = OrderedDict(fairseq_state(model, mode="group_norm"))
    args = Namespace(**{("arch" if k == "_name" else k): v for k, v in model_cfg("wav2vec2").items()}, normalize=False)
    wavlm = tiny_torchaudio("wavlm", **WAVLM_VARIANTS["group-post"], seed=6)
    ctc_state = OrderedDict(fairseq_state(model, mode="group_norm", prefix="w2v_encoder.w2v_model."))
    ctc_state.update({"w2v_encoder.proj.weight": torch.zeros(30, 32), "w2v_encoder.proj.bias": torch.zeros(30)})
    ctc_cfg = {"_name": "hubert_ctc", "w2v_args": {"task": {"_name": "hubert_pretraining", "normalize": False}, "model": model_cfg("hubert")}}
    layouts = {
        "hydra": {"cfg": {"task": {"_name": "hubert_pretraining", "normalize": False}, "model": model_cfg("hubert")}, "model": state},
        "pre_hydra": {"args": args, "model": state},
        "ctc": {"cfg": {"task": {"_name": "audio_finetuning", "normalize": False}, "model": ctc_cfg}, "model": ctc_state},
        "fp16": {"cfg": {"model": model_cfg("hubert")}, "model": OrderedDict((k, v.half()) for k, v in state.items())},
    }
    spec = WAVLM_VARIANTS["group-post"]
    flat = {k: v for k, v in model_cfg("wavlm", mode=spec["mode"], pre_norm=spec["pre_norm"]).items() if k != "_name"}
    flat.update(relative_position_embedding=True, num_buckets=spec["buckets"], max_distance=spec["max_distance"], gru_rel_pos=True, normalize=False)
    layouts["wavlm"] = {"cfg": flat, "model": OrderedDict(fairseq_state(wavlm, mode=spec["mode"]))}  # unilm's flat cfg
    for name, ckpt in layouts.items():
        for legacy in (False, True):
            path = tmp_path / f"{name}{'_legacy' if legacy else ''}.pt"
            torch.save({**ckpt, **extras}, path, _use_new_zipfile_serialization=not legacy)
            read = read_fairseq_checkpoint(path)
            assert read["extra_state"]["rng"][1].dtype == np.uint32 and isinstance(read["extra_state"]["metrics"], OrderedDict)
            encoder = speechssl.load_encoder(path)
            expect = "wav2vec2" if name == "pre_hydra" else "wavlm" if name == "wavlm" else "hubert"
            assert encoder.config.family == expect, name
            if name == "fp16":  # stored in fp16, loaded into fp32 parameters with the same values
                w = encoder.mask_embedding
                assert w.dtype == torch.float32 and torch.equal(w, state["mask_emb"].half().float())
    from speechssl.cli import convert

    assert convert.main(["--from", "fairseq", str(tmp_path / "pre_hydra_legacy.pt"), str(tmp_path / "x.safetensors")]) == 0
    assert "wav2vec2, 2 layers" in capsys.readouterr().out


# ------------------------------------------------------------- manifests: command audio sources
def test_command_audio_sources_are_refused(mini_corpus, tmp_path, capsys, monkeypatch):
    """lhotse runs a 'command' audio source (a shell pipe, as Kaldi's wav.scp has) when the audio is
    read: a manifest with one is refused, naming it, the cut and the command, unless trusted."""
    import gzip
    import json

    from speechssl.data.manifest import ALLOW_COMMAND_AUDIO, load_cuts

    monkeypatch.delenv(ALLOW_COMMAND_AUDIO, raising=False)
    marker = tmp_path / "PWNED"
    lines = gzip.open(mini_corpus / "cuts_dev.jsonl.gz", "rt").read().splitlines()
    first = json.loads(lines[-1])  # the last cut: a lazy reader meets it only at the end
    wav = first["recording"]["sources"][0]["source"]
    first["recording"]["sources"] = [{"type": "command", "channels": [0], "source": f"touch {marker}; cat {wav}"}]
    manifest = tmp_path / "cuts_dev.jsonl.gz"
    with gzip.open(manifest, "wt") as f:
        f.write("\n".join([*lines[:-1], json.dumps(first)]) + "\n")

    for lazy in (False, True):
        with pytest.raises(ValueError, match=rf"cuts_dev.jsonl.gz: cut {first['id']}: its audio comes from the shell command"):
            list(load_cuts(manifest, lazy=lazy))
    err = _cli("features", [str(manifest), str(tmp_path / "feats"), "--kind", "mfcc"], capsys)
    assert "refused" in err and ALLOW_COMMAND_AUDIO in err
    assert not marker.exists()

    monkeypatch.setenv(ALLOW_COMMAND_AUDIO, "1")  # trusted: lhotse runs it
    cut = next(c for c in load_cuts(manifest) if c.id == first["id"])
    cut.load_audio()
    assert marker.exists()
