"""What users copy: the examples in `speechssl <verb> --help`, run for real on the tiny mini corpus
(the main job, egs/mini/run.sh, has its own tests in test_egs_mini.py)."""

from __future__ import annotations

import gzip
import json
import shlex
from pathlib import Path

import pytest

from speechssl.cli.main import VERBS, main

ROOT = Path(__file__).resolve().parents[1]


def help_examples(verb: str) -> list[str]:
    import importlib

    epilog = importlib.import_module(f"speechssl.cli.{VERBS[verb][0]}").get_parser().epilog
    return [line.strip() for line in epilog.split("Example:")[1].splitlines() if line.strip()]


@pytest.fixture
def workdir(mini_corpus, tmp_path, monkeypatch):
    """A folder where data/mini is the tiny corpus, as after `egs/mini/run.sh --tiny true`."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mini").symlink_to(mini_corpus)
    (tmp_path / "recipes").symlink_to(Path(__file__).resolve().parents[1] / "recipes")  # examples run from the repo root
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_data_verb_examples_run(workdir, capsys):
    # in this order: the import example reads what the export example wrote
    for verb in ("stats", "validate", "fairseq-export", "fairseq-import", "subset"):
        for line in help_examples(verb):
            argv = shlex.split(line)
            assert argv[:2] == ["speechssl", verb]
            assert main(argv[1:]) == 0, line
    out = capsys.readouterr().out
    assert "phone inventory" in out and "are usable" in out
    imported = workdir / "exp" / "imported" / "cuts_train.jsonl.gz"
    original = workdir / "data" / "mini" / "cuts_train.jsonl.gz"
    with gzip.open(imported, "rt") as a, gzip.open(original, "rt") as b:
        # fairseq ids are paths under the tsv root: wavs/<speaker>/<cut_id>.flac -> <speaker>/<cut_id>
        assert [json.loads(x)["id"].split("/")[-1] for x in a] == [json.loads(x)["id"] for x in b]


def test_make_mini_corpus_tiny_example_runs(workdir, capsys):
    tiny = [line for line in help_examples("make-mini-corpus") if "--tiny" in line]
    assert tiny, "make-mini-corpus --help should show the --tiny example"
    assert main(shlex.split(tiny[0])[1:]) == 0
    assert (workdir / "data" / "mini_tiny" / ".complete").is_file()


def test_convert_examples_run(tmp_path, monkeypatch, capsys):
    """The Hugging Face examples of `speechssl convert --help` (the fairseq and torchaudio ones need
    checkpoints from elsewhere; their converters have their own tests)."""
    transformers = pytest.importorskip("transformers")
    monkeypatch.chdir(tmp_path)
    tiny = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_dim=[32, 32, 32],
                conv_kernel=[10, 8, 8], conv_stride=[5, 8, 8], num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)  # fmt: skip
    transformers.HubertModel(transformers.HubertConfig(**tiny)).save_pretrained(tmp_path / "exp" / "hf_hubert")
    lines = [line for line in help_examples("convert") if "--from hf" in line or "--from speechssl" in line]
    assert len(lines) == 2
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
    back = transformers.AutoModel.from_pretrained(tmp_path / "exp" / "hubert_hf")
    assert type(back).__name__ == "HubertModel"


def test_label_pipeline_examples_run(workdir, capsys):
    """The examples of features, kmeans, label-quality, topics, pretrain, tokens, asr, sv and er, in pipeline order, on the tiny corpus."""
    import torch

    from speechssl.checkpoint import save_encoder
    from speechssl.models import build_encoder, preset

    torch.manual_seed(0)
    save_encoder(build_encoder(preset("tiny_hubert")), workdir / "exp" / "tiny_hubert.safetensors")
    for verb in ("features", "kmeans", "label-quality", "topics", "pretrain", "tokens", "asr", "sv", "er"):
        lines = help_examples(verb)
        assert lines, verb
        for line in lines:
            argv = shlex.split(line)
            assert argv[:2] == ["speechssl", verb]
            assert main(argv[1:]) == 0, line
    out = capsys.readouterr().out
    assert "PNMI" in out
    labels = workdir / "exp" / "labels" / "mfcc_km100"
    assert (labels / "labels.json").is_file() and (labels / "train.km").is_file() and (labels / "dict.km.txt").is_file()
    assert (workdir / "exp" / "feats" / "mfcc_sharded" / "train" / "shard-2-of-2.json").is_file()
    assert (workdir / "exp" / "feats" / "tiny_hubert_l1" / "dev" / "shard-1-of-1.json").is_file()
    assert (workdir / "exp" / "topics" / "mfcc_km100_t4" / "topics.json").is_file()
    assert (workdir / "exp" / "tokens" / "tokens.json").is_file() and (workdir / "exp" / "tokens" / "bpe60.jsonl").is_file()
    assert (workdir / "exp" / "tokens_sharded" / "tokens.1-of-2.json").is_file()
    assert list((workdir / "exp" / "tokens_sharded").glob("units.1-of-2.part-*.npz"))
    for exp in ("tiny", "tiny_topic"):
        assert (workdir / "exp" / "pretrain" / exp / "encoder.safetensors").is_file()
    assert (workdir / "exp" / "asr" / "adapters" / "adapter.safetensors").is_file()
    assert "| adapters | adapters | test |" in (workdir / "exp" / "asr" / "RESULTS.md").read_text()
    assert (workdir / "exp" / "sv" / "pretrained" / "eval_test" / "det.png").is_file()
    assert "| fbank | fbank | frozen | test |" in (workdir / "exp" / "sv" / "RESULTS.md").read_text()
    assert (workdir / "exp" / "er" / "mfcc" / "eval_test" / "confusion.png").is_file()
    assert "| mfcc | mfcc | frozen | 1 |" in (workdir / "exp" / "er" / "RESULTS.md").read_text()
