"""fairseq interop: .tsv / .km / .wrd / .ltr export and import, round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment

from speechssl.cli import fairseq_export, fairseq_import
from speechssl.data.fairseq import cuts_from_tsv, export_fairseq, labels_from_km, read_km, read_tsv
from speechssl.data.manifest import load_cuts, save_cuts
from speechssl.labels.files import read_labels, write_labels


@pytest.fixture
def corpus(tmp_path):
    """Three 16 kHz mono files in sub-folders, with transcripts, and labels at 50 Hz."""
    rng = np.random.default_rng(0)
    cuts, labels = [], {}
    for i, (spk, secs) in enumerate([("a", 1.0), ("a", 0.75), ("b", 1.5)]):
        path = tmp_path / "audio" / spk / f"utt{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, rng.standard_normal(int(secs * 16000)).astype(np.float32) * 0.1, 16000)
        rec = Recording.from_file(path, recording_id=f"{spk}/utt{i}")
        cut = rec.to_cut()
        cut.supervisions = [
            SupervisionSegment(id=rec.id, recording_id=rec.id, start=0, duration=rec.duration, text=f"hello world {i}")
        ]
        cuts.append(cut)
        labels[cut.id] = rng.integers(0, 100, int(secs * 50))
    return tmp_path, CutSet.from_cuts(cuts), labels


def test_export_then_import_round_trip(corpus):
    root, cuts, labels = corpus
    out = root / "fs"
    written = export_fairseq(cuts, out, "train", labels=labels, transcripts=True)
    tsv_root, entries = read_tsv(written["tsv"])
    assert tsv_root == (root / "audio").resolve()
    assert [e.relpath for e in entries] == ["a/utt0.wav", "a/utt1.wav", "b/utt2.wav"]
    assert [e.num_samples for e in entries] == [16000, 12000, 24000]
    km = read_km(written["km"], num_lines=3)
    for cut, seq in zip(cuts, km):
        np.testing.assert_array_equal(seq, labels[cut.id])
    assert (out / "train.wrd").read_text().splitlines()[0] == "hello world 0"
    assert (out / "train.ltr").read_text().splitlines()[0] == "h e l l o | w o r l d | 0 |"

    back, skipped = cuts_from_tsv(written["tsv"], check_audio=True)
    assert skipped == []
    assert [c.id for c in back] == ["a/utt0", "a/utt1", "b/utt2"]
    assert [c.duration for c in back] == [1.0, 0.75, 1.5]
    back_labels = labels_from_km(written["tsv"], written["km"], back)
    for cut_id in back.ids:
        np.testing.assert_array_equal(back_labels[cut_id], labels[cut_id])


def test_relative_root_and_missing_file(corpus):
    root, cuts, _ = corpus
    written = export_fairseq(cuts, root / "fs", "dev")
    lines = written["tsv"].read_text().splitlines()
    lines[0] = "../audio"  # fairseq roots may be relative to where the tsv lies
    lines.append("b/gone.wav\t16000")
    written["tsv"].write_text("\n".join(lines) + "\n")
    cuts2, skipped = cuts_from_tsv(written["tsv"])
    assert len(cuts2) == 3 and skipped == [("b/gone.wav", "audio file not found")]
    with pytest.raises(ValueError, match="gone.wav: audio file not found"):
        cuts_from_tsv(written["tsv"], strict=True)


def test_check_audio_catches_wrong_lengths(corpus):
    root, cuts, _ = corpus
    tsv = export_fairseq(cuts, root / "fs", "x")["tsv"]
    text = tsv.read_text().replace("\t12000", "\t12345")
    tsv.write_text(text)
    _, skipped = cuts_from_tsv(tsv, check_audio=True)
    assert skipped == [("a/utt1.wav", "header says 12000 samples at 16000 Hz, tsv says 12345 at 16000 Hz")]


def test_malformed_files(tmp_path):
    (tmp_path / "bad.tsv").write_text("/root\nfoo.wav 123\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected 'relpath<TAB>num_samples'"):
        read_tsv(tmp_path / "bad.tsv")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(ValueError, match="empty.tsv: empty fairseq manifest"):
        read_tsv(tmp_path / "empty.tsv")
    (tmp_path / "x.km").write_text("1 2 3\n4 five\n")
    with pytest.raises(ValueError, match=r"x.km:2: expected space-separated integers"):
        read_km(tmp_path / "x.km")
    (tmp_path / "y.km").write_text("1 2\n")
    with pytest.raises(ValueError, match="1 label lines but the manifest has 2"):
        read_km(tmp_path / "y.km", num_lines=2)


def test_segments_and_other_rates_need_audio_copies(tmp_path):
    x = np.random.default_rng(1).standard_normal((16000, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "st.wav", x, 8000)  # 2 s, 8 kHz stereo
    cut = Recording.from_file(tmp_path / "st.wav").to_cut().truncate(offset=0.5, duration=1.0)
    cuts = CutSet.from_cuts([cut])
    with pytest.raises(ValueError, match="not a whole 16 kHz mono file.*--write-audio"):
        export_fairseq(cuts, tmp_path / "fs", "train")
    written = export_fairseq(cuts, tmp_path / "fs", "train", audio_dir=tmp_path / "wav16")
    _, entries = read_tsv(written["tsv"])
    assert entries[0].num_samples == 16000
    data, rate = sf.read(tmp_path / "wav16" / f"{cut.id}.wav")
    assert rate == 16000 and data.ndim == 1 and data.shape[0] == 16000


def test_labels_must_cover_cuts_and_label_file_round_trip(corpus, tmp_path):
    _, cuts, labels = corpus
    partial = dict(list(labels.items())[:2])
    with pytest.raises(ValueError, match="1 cuts have no labels"):
        export_fairseq(cuts, tmp_path / "fs", "t", labels=partial)
    path = write_labels(tmp_path / "l.txt", {**labels, "empty": []})
    back = read_labels(path)
    assert list(back) == [*labels, "empty"] and back["empty"].size == 0
    for k in labels:
        np.testing.assert_array_equal(back[k], labels[k])
    with pytest.raises(ValueError, match="whitespace"):
        write_labels(tmp_path / "bad.txt", {"a b": [1]})
    (tmp_path / "dup.txt").write_text("a 1 2\na 3\n")
    with pytest.raises(ValueError, match=r"dup.txt:2: duplicate id 'a'"):
        read_labels(tmp_path / "dup.txt")


def test_cli_export_import(corpus, capsys):
    root, cuts, labels = corpus
    manifest = save_cuts(cuts, root / "data" / "cuts_train.jsonl.gz")
    write_labels(root / "train.labels", labels)
    assert fairseq_export.main([str(manifest), str(root / "fs"), "--labels", str(root / "train.labels"), "--transcripts"]) == 0
    assert (root / "fs" / "train.km").is_file() and (root / "fs" / "train.ltr").is_file()
    out = root / "imp" / "cuts_train.jsonl.gz"
    rc = fairseq_import.main(
        [str(root / "fs" / "train.tsv"), str(out), "--km", str(root / "fs" / "train.km"), "--labels-out", str(root / "imp" / "l.txt")]
    )
    assert rc == 0
    assert list(load_cuts(out).ids) == list(cuts.ids)
    assert read_labels(root / "imp" / "l.txt").keys() == labels.keys()
    assert (root / "imp" / "cuts_train.skipped.tsv").read_text() == ""
    # a user error is one line on stderr and a non-zero exit, not a traceback
    assert fairseq_import.main([str(root / "nope.tsv"), str(out)]) == 1
    assert "nope.tsv: fairseq manifest not found" in capsys.readouterr().err
