"""Discrete tokens: the Tokenizer API, `speechssl tokens extract` (inputs, formats, de-duplication,
resume, shards, bad files) on the mini corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from speechssl.checkpoint import save_encoder
from speechssl.cli.main import main
from speechssl.data.dataset import AudioDataset
from speechssl.data.manifest import load_cuts
from speechssl.features.layer import LayerExtractor
from speechssl.features.stream import ComputedFeatures
from speechssl.labels.kmeans import KMeansConfig, KMeansModel, fit_kmeans, sample_frames
from speechssl.models import build_encoder, preset
from speechssl.tokens.extract import ExtractConfig, extract_tokens, read_tokens_jsonl, read_tokens_npz
from speechssl.tokens.inputs import collect_inputs
from speechssl.tokens.tokenizer import Tokenizer

LAYER = 2


def _fit(encoder, manifest: Path, out: Path, layer: int = LAYER, k: int = 12, path=None) -> Path:
    source = ComputedFeatures(load_cuts(manifest), LayerExtractor(encoder, layer, encoder_path=path), str(manifest), progress=False)
    sample, _ = sample_frames(source, KMeansConfig(clusters=k))
    fit_kmeans(sample, source.spec, KMeansConfig(clusters=k)).save(out)
    return out


@pytest.fixture(scope="module")
def setup(mini_corpus, tmp_path_factory):
    """A random tiny HuBERT saved as a speechssl checkpoint, and k-means (k=12) on its layer 2."""
    tmp = tmp_path_factory.mktemp("tok")
    torch.manual_seed(0)
    enc = build_encoder(preset("tiny_hubert")).eval()
    enc_path = save_encoder(enc, tmp / "enc.safetensors")
    km = _fit(enc, mini_corpus / "cuts_dev.jsonl.gz", tmp / "km.safetensors", path=enc_path)
    return {"encoder": enc_path, "kmeans": km, "dev": mini_corpus / "cuts_dev.jsonl.gz", "corpus": mini_corpus}


def _batch(manifest: Path, n: int):
    cuts = load_cuts(manifest).subset(first=n)
    return AudioDataset()[cuts]


def test_units_alone_equal_units_in_a_padded_batch_and_the_label_pipeline(setup, tmp_path):
    from speechssl.labels.assign import label_corpus
    from speechssl.labels.store import read_label_dir

    tok = Tokenizer.from_files(setup["encoder"], setup["kmeans"], device="cpu")
    assert tok.layer == LAYER and tok.num_units == 12 and tok.frame_rate == 50.0
    batch = _batch(setup["dev"], 6)
    assert len(set(batch.lengths.tolist())) > 1  # really padded
    units = tok(batch.wavs, batch.lengths)
    for i, n in enumerate(batch.lengths.tolist()):
        alone = tok(batch.wavs[i : i + 1, :n])[0]
        assert torch.equal(units[i], alone), batch.cut_ids[i]
        assert len(alone) == int(tok.output_lengths(torch.tensor([n]))[0])
        assert units[i].dtype == torch.int64 and 0 <= int(units[i].min()) and int(units[i].max()) < 12
    # the same units as `kmeans label` gives these cuts
    km = KMeansModel.load(setup["kmeans"])
    cuts = load_cuts(setup["dev"]).subset(first=6)
    source = ComputedFeatures(cuts, tok.extractor, "dev", progress=False)
    label_corpus(km, {"dev": source}, tmp_path / "labels")
    labels = read_label_dir(tmp_path / "labels").read("dev")
    for cut_id, u in zip(batch.cut_ids, units):
        np.testing.assert_array_equal(labels[cut_id], u.numpy())


def test_a_kmeans_model_of_another_layer_encoder_or_mfcc_is_refused(setup, tmp_path):
    from speechssl import load_encoder
    from speechssl.features.spec import FeatureSpec

    enc = load_encoder(setup["encoder"])
    km = KMeansModel.load(setup["kmeans"])
    with pytest.raises(ValueError, match="layer differs: expected 2, found 1"):
        Tokenizer(enc, km, layer=1)
    torch.manual_seed(1)
    with pytest.raises(ValueError, match="encoder differs"):
        Tokenizer(build_encoder(preset("tiny_hubert")), km)
    mfcc = KMeansModel(torch.randn(4, 39), FeatureSpec(kind="mfcc", dim=39, frame_rate=100.0))
    mfcc.save(tmp_path / "mfcc.safetensors")
    with pytest.raises(ValueError, match="fitted on MFCC"):
        Tokenizer.from_files(setup["encoder"], tmp_path / "mfcc.safetensors")
    assert main(["tokens", "extract", "--encoder", str(setup["encoder"]), "--kmeans", str(setup["kmeans"]), "--layer", "1",
                 str(setup["dev"]), str(tmp_path / "out"), "-q"]) == 1  # fmt: skip
    assert not (tmp_path / "out" / "tokens.json").exists()


def test_hugging_face_and_fairseq_encoders(setup, tmp_path):
    """Every encoder load_encoder reads: a Hugging Face export of the same weights gives the same
    units with the same k-means model; a fairseq checkpoint loads without a flag (the safe reader)."""
    from test_convert_fairseq import fairseq_state, model_cfg
    from torchaudio_refs import tiny_torchaudio

    from speechssl import load_encoder
    from speechssl.convert.hf import encoder_to_hf

    batch = _batch(setup["dev"], 4)
    ours = Tokenizer.from_files(setup["encoder"], setup["kmeans"], device="cpu")
    encoder_to_hf(load_encoder(setup["encoder"]), tmp_path / "hf")
    hf = Tokenizer.from_files(tmp_path / "hf", setup["kmeans"], device="cpu")
    for a, b in zip(ours(batch.wavs, batch.lengths), hf(batch.wavs, batch.lengths)):
        assert torch.equal(a, b)

    path = tmp_path / "hubert.pt"
    torch.save({"cfg": {"model": model_cfg("hubert")}, "model": fairseq_state(tiny_torchaudio("wav2vec2", seed=3), mode="group_norm")}, path)
    fs_km = _fit(load_encoder(path), setup["dev"], tmp_path / "fs_km.safetensors", layer=1, k=6, path=path)
    with pytest.raises(ValueError, match="encoder differs"):  # our k-means does not fit the fairseq model
        Tokenizer.from_files(path, setup["kmeans"])
    fs = Tokenizer.from_files(path, fs_km, device="cpu")
    units = fs(batch.wavs, batch.lengths)
    assert [len(u) for u in units] == fs.output_lengths(batch.lengths).tolist()
    assert len(torch.cat(units).unique()) > 1


def _extract(setup, src, out, *extra) -> int:
    return main(["tokens", "extract", "--encoder", str(setup["encoder"]), "--kmeans", str(setup["kmeans"]), str(src), str(out), "-q", *extra])


def test_cli_extract_jsonl_and_npz_with_durations(setup, tmp_path, capsys):
    out = tmp_path / "tok"
    assert _extract(setup, setup["dev"], out, "--dedup", "--format", "jsonl,npz", "--part-size", "7", "--max-duration", "20") == 0
    printed = capsys.readouterr().out
    assert "real-time factor" in printed and "tokens/s (de-duplicated)" in printed
    cuts = load_cuts(setup["dev"])
    records = read_tokens_jsonl(out / "tokens.jsonl")
    assert set(records) == {c.id for c in cuts}
    parts = sorted(out.glob("units.part-*.npz"))
    assert len(parts) == -(-len(cuts) // 7) or len(parts) > 1  # parts of at most 7 utterances
    npz = read_tokens_npz(out)
    tok = Tokenizer.from_files(setup["encoder"], setup["kmeans"], device="cpu")
    batch = _batch(setup["dev"], 5)
    frames = tokens = 0
    for cut_id, u in zip(batch.cut_ids, tok(batch.wavs, batch.lengths)):
        r = records[cut_id]
        np.testing.assert_array_equal(np.repeat(r["units"], r["durations"]), u.numpy())  # run lengths undo the dedup
        assert (np.diff(r["units"]) != 0).all() and (r["durations"] >= 1).all()
        np.testing.assert_array_equal(npz[cut_id]["units"], r["units"])
        np.testing.assert_array_equal(npz[cut_id]["durations"], r["durations"])
    for r in records.values():
        frames, tokens = frames + int(r["durations"].sum()), tokens + len(r["units"])
    summary = json.loads((out / "tokens.json").read_text())
    s = summary["summary"]
    assert s["utterances"] == len(cuts) and s["frames"] == frames and s["tokens"] == tokens
    assert s["frame_rate"] == 50.0 and s["token_rate"] == pytest.approx(50.0 * tokens / frames) and s["token_rate"] < 50.0
    assert summary["settings"]["layer"] == LAYER and summary["settings"]["dedup"] is True
    assert (out / "errors.tsv").read_text() == ""
    assert [p.name for p in out.glob(".*")] == [".speechssl.lock"]  # no settings or temp files left; the (released) lock stays
    # a re-run has nothing to do; other settings in the same folder are refused
    assert _extract(setup, setup["dev"], out, "--dedup", "--format", "jsonl,npz") == 0
    assert "0 utterances" in capsys.readouterr().out
    assert read_tokens_jsonl(out / "tokens.jsonl").keys() == records.keys()
    assert _extract(setup, setup["dev"], out, "--format", "jsonl,npz") == 1
    assert "other settings (dedup: True there, False now)" in capsys.readouterr().err


def test_interrupted_run_resumes_without_duplicates_and_never_looks_complete(setup, tmp_path, monkeypatch):
    tok = Tokenizer.from_files(setup["encoder"], setup["kmeans"], device="cpu")
    cuts = load_cuts(setup["dev"])
    out = tmp_path / "tok"
    cfg = ExtractConfig(formats=("jsonl", "npz"), part_size=4, max_duration=15, progress=False)
    reference = extract_tokens(tok, cuts, tmp_path / "ref", ExtractConfig(max_duration=15, progress=False))
    calls = {"n": 0}
    real = Tokenizer.encode

    def dies_on_third_batch(self, wavs, lens):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, wavs, lens)

    monkeypatch.setattr(Tokenizer, "encode", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        extract_tokens(tok, cuts, out, cfg)
    monkeypatch.setattr(Tokenizer, "encode", real)
    assert (out / "tokens.jsonl.partial").exists()
    assert not (out / "tokens.jsonl").exists() and not (out / "tokens.json").exists()
    written = read_tokens_jsonl(out / "tokens.jsonl.partial")
    in_parts = read_tokens_npz(out)
    assert 0 < len(written) < len(cuts) and set(in_parts) <= set(written)
    # a torn last line, as a crash in the middle of a write leaves it; and an id missing from the
    # JSONL but present in an npz part (it is written again, and taken out of the part)
    lines = (out / "tokens.jsonl.partial").read_text().splitlines(keepends=True)
    dropped = json.loads(lines[0])["id"]
    assert dropped in in_parts
    (out / "tokens.jsonl.partial").write_text("".join(lines[1:]) + '{"id": "torn", "units": [1, 2')
    s = extract_tokens(tok, cuts, out, cfg)
    assert s.utterances == len(cuts) and s.new_utterances == len(cuts) - len(in_parts) + 1
    part_ids = [i for p in sorted(out.glob("units.part-*.npz")) for i in np.load(p)["ids"].tolist()]
    assert sorted(part_ids) == sorted(c.id for c in cuts)  # every id in exactly one part
    lines = (out / "tokens.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids)) == len(cuts)
    final = read_tokens_jsonl(out / "tokens.jsonl")
    ref = read_tokens_jsonl(tmp_path / "ref" / "tokens.jsonl")
    assert final.keys() == ref.keys() == read_tokens_npz(out).keys()
    for k in ref:
        np.testing.assert_array_equal(final[k]["units"], ref[k]["units"])
    assert reference.frames == s.frames


def test_folder_and_list_inputs_with_unreadable_files(setup, tmp_path, capsys):
    src = tmp_path / "wavs"
    cuts = load_cuts(setup["dev"]).subset(first=3)
    for i, c in enumerate(cuts):
        (src / f"spk{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(c.recording.sources[0].source, src / f"spk{i % 2}" / f"utt{i}.wav")
    (src / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (src / "empty.flac").write_bytes(b"")
    (src / "notes.txt").write_text("not audio, not picked up")
    (src / "gone.wav").symlink_to(tmp_path / "nowhere.wav")  # a dangling link: reported, not left out unseen
    out = tmp_path / "out"
    assert _extract(setup, src, out) == 0
    assert "3 input(s) could not be read" in capsys.readouterr().out
    records = read_tokens_jsonl(out / "tokens.jsonl")
    assert set(records) == {"spk0/utt0", "spk1/utt1", "spk0/utt2"}
    errors = [line.split("\t") for line in (out / "errors.tsv").read_text().splitlines()]
    assert sorted(e[0] for e in errors) == ["broken", "empty", "gone"]
    (src / "gone.wav").unlink()
    assert all(e[1].endswith((".wav", ".flac")) and e[2] for e in errors)
    # a list of files, Kaldi-style "<id> <path>" lines with a relative path; same units
    listing = tmp_path / "wav.scp"
    listing.write_text("# id path\na wavs/spk0/utt0.wav\nb " + str(src / "spk1" / "utt1.wav") + "\n\n")
    assert _extract(setup, listing, tmp_path / "out2") == 0
    listed = read_tokens_jsonl(tmp_path / "out2" / "tokens.jsonl")
    np.testing.assert_array_equal(listed["a"]["units"], records["spk0/utt0"]["units"])
    np.testing.assert_array_equal(listed["b"]["units"], records["spk1/utt1"]["units"])
    # --strict fails on the first unreadable file, and writes no tokens
    assert _extract(setup, src, tmp_path / "out3", "--strict") == 1
    assert "broken.wav" in capsys.readouterr().err
    assert not (tmp_path / "out3" / "tokens.jsonl").exists()
    # a file that disappears after the inputs were listed is reported at decoding time
    found, errs = collect_inputs(src)
    assert len(found) == 3 and len(errs) == 2
    (src / "spk1" / "utt1.wav").unlink()
    tok = Tokenizer.from_files(setup["encoder"], setup["kmeans"], device="cpu")
    s = extract_tokens(tok, found, tmp_path / "out4", ExtractConfig(progress=False), input_errors=errs)
    assert s.utterances == 2 and s.errors == 3
    assert "spk1/utt1" in (tmp_path / "out4" / "errors.tsv").read_text()
    # duplicate ids are refused, naming both files
    (src / "spk0" / "utt0.flac").write_bytes((src / "spk0" / "utt0.wav").read_bytes())
    with pytest.raises(ValueError, match="two inputs have the id 'spk0/utt0'"):
        collect_inputs(src)


def test_shards_split_the_inputs_and_a_corpus_folder_reads_its_splits(setup, tmp_path):
    corpus = setup["corpus"]
    for i in (1, 2):
        assert _extract(setup, corpus, tmp_path / "out", "--splits", "dev,test", "--shard", f"{i}/2") == 0
    a = read_tokens_jsonl(tmp_path / "out" / "tokens.1-of-2.jsonl")
    b = read_tokens_jsonl(tmp_path / "out" / "tokens.2-of-2.jsonl")
    expected = {c.id for s in ("dev", "test") for c in load_cuts(corpus / f"cuts_{s}.jsonl.gz")}
    assert not a.keys() & b.keys() and a.keys() | b.keys() == expected
    assert (tmp_path / "out" / "tokens.1-of-2.json").exists() and (tmp_path / "out" / "tokens.2-of-2.json").exists()
    assert _extract(setup, corpus, tmp_path / "x", "--splits", "nope") == 1


def test_length_batches_cover_every_cut_once_within_the_padded_budget(setup):
    from speechssl.tokens.extract import length_batches

    cuts = load_cuts(setup["dev"]).to_eager()
    batches = length_batches(cuts, 12.0)
    ids = [c.id for b in batches for c in b]
    assert sorted(ids) == sorted(c.id for c in cuts)
    durations = [[c.duration for c in b] for b in batches]
    for d in durations:
        assert len(d) == 1 or max(d) * len(d) <= 12.0
    flat = [x for d in durations for x in d]
    assert flat == sorted(flat, reverse=True)  # longest first: similar lengths share a batch
    assert len(length_batches(cuts, 0.5)) == len(cuts)  # every cut longer than the budget: alone


def test_cli_unit_bpe_on_extracted_tokens(setup, tmp_path, capsys):
    from speechssl.tokens.bpe import UnitBPE, dedup

    assert _extract(setup, setup["dev"], tmp_path / "tok") == 0
    jsonl = tmp_path / "tok" / "tokens.jsonl"
    assert main(["tokens", "bpe-train", "--vocab-size", "40", str(jsonl), str(tmp_path / "bpe"), "-q"]) == 0
    assert "unit BPE with 40 pieces (de-duplicated units)" in capsys.readouterr().out
    assert main(["tokens", "bpe-encode", "--model", str(tmp_path / "bpe.model"), str(jsonl), str(tmp_path / "bpe.jsonl"), "-q"]) == 0
    assert "units per piece" in capsys.readouterr().out
    bpe = UnitBPE.load(tmp_path / "bpe.model")
    units = read_tokens_jsonl(jsonl)
    pieces = [json.loads(line) for line in (tmp_path / "bpe.jsonl").read_text().splitlines()]
    assert [p["id"] for p in pieces] == list(units)
    for p in pieces:
        np.testing.assert_array_equal(bpe.decode(p["pieces"]), dedup(units[p["id"]]["units"])[0])
    assert sum(len(p["pieces"]) for p in pieces) < sum(len(dedup(u["units"])[0]) for u in units.values())
    assert main(["tokens", "bpe-train", "--vocab-size", "40", str(tmp_path / "missing.jsonl"), str(tmp_path / "x"), "-q"]) == 1
    assert "missing.jsonl: tokens JSONL not found" in capsys.readouterr().err


@pytest.mark.gpu
def test_gpu_units_equal_cpu_units(setup):
    """On a GPU the encoder and the assignment run there; fp32 units equal the CPU's (all but near ties)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    batch = _batch(setup["dev"], 6)
    cpu = Tokenizer.from_files(setup["encoder"], setup["kmeans"], device="cpu")(batch.wavs, batch.lengths)
    gpu_tok = Tokenizer.from_files(setup["encoder"], setup["kmeans"], device="cuda")
    assert gpu_tok.device.type == "cuda"
    gpu = gpu_tok(batch.wavs, batch.lengths)
    same = sum(int((a == b).sum()) for a, b in zip(cpu, gpu))
    assert [len(u) for u in gpu] == [len(u) for u in cpu]
    assert same / sum(len(u) for u in cpu) > 0.99


def test_utterances_with_nonfinite_features_are_reported_not_tokenized(setup, tmp_path, capsys):
    """Units of NaN features would all be one unit: such utterances go to errors.tsv, not into the
    tokens (here every one: an encoder file with a NaN weight, written around save_encoder's own
    check), and the counts say so; --strict fails instead."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(setup["encoder"]), framework="pt") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    state["encoder.layers.0.feed_forward.fc1.weight"][0, 0] = float("nan")
    broken = tmp_path / "nan_encoder.safetensors"
    save_file(state, str(broken), metadata=meta)
    # the same centroids, for this encoder's fingerprint (a k-means model is tied to its encoder)
    from dataclasses import replace

    from speechssl.features.layer import state_dict_fingerprint
    from speechssl.labels.kmeans import KMeansModel

    km = KMeansModel.load(setup["kmeans"])
    kmeans = KMeansModel(km.centroids, replace(km.spec, encoder=state_dict_fingerprint(state)), km.info).save(tmp_path / "km.safetensors")
    src = tmp_path / "wavs"
    src.mkdir()
    for i, c in enumerate(load_cuts(setup["dev"]).subset(first=2)):
        shutil.copy(c.recording.sources[0].source, src / f"utt{i}.wav")
    out = tmp_path / "out"
    argv = ["tokens", "extract", str(src), str(out), "--encoder", str(broken), "--kmeans", str(kmeans), "--device", "cpu", "-q"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 input(s) could not be read" in printed and ": 0 utterances" in printed
    assert read_tokens_jsonl(out / "tokens.jsonl") == {}
    errors = [line.split("\t") for line in (out / "errors.tsv").read_text().splitlines()]
    assert sorted(e[0] for e in errors) == ["utt0", "utt1"] and all("NaN or infinite" in e[2] for e in errors)
    assert json.loads((out / "tokens.json").read_text())["summary"]["utterances"] == 0
    assert main([*argv[:3], str(tmp_path / "strict"), *argv[4:], "--strict"]) == 1
    assert "NaN or infinite" in capsys.readouterr().err
