"""The generic folder importer: transcripts, speakers, and every kind of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from corpus_fakes import write_tone

from speechssl.cli.prepare import main
from speechssl.data.audio import AudioError, load_cut_audio
from speechssl.data.corpora import prepare_folder, read_skipped
from speechssl.data.manifest import load_cuts


@pytest.fixture()
def good_folder(tmp_path) -> Path:
    """Two speakers' folders, sibling transcripts, mixed formats and extension case."""
    root = tmp_path / "recordings"
    write_tone(root / "alice" / "utt1.wav", 0.5)
    (root / "alice" / "utt1.txt").write_text("hello  there\n")
    write_tone(root / "alice" / "session 2" / "utt2.FLAC", 0.75)
    (root / "alice" / "session 2" / "utt2.lab").write_text("general kenobi")
    write_tone(root / "bob" / "utt3.ogg", 0.6, rate=22050)
    (root / "bob" / "utt3.txt").write_text("you are a bold one")
    (root / "bob" / "notes.md").write_text("not audio, not looked at")
    write_tone(root / ".cache" / "hidden.wav", 0.5)  # hidden: ignored
    return root


def test_ids_durations_and_sibling_text(good_folder, tmp_path):
    splits = prepare_folder(good_folder, tmp_path / "out", sibling_text=True, speaker_from_dir=1, language="en")
    cuts = {c.id: c for c in splits["all"]}
    assert sorted(cuts) == ["alice/session_2/utt2", "alice/utt1", "bob/utt3"]
    expect = {
        "alice/utt1": (0.5, "hello there", "alice"),
        "alice/session_2/utt2": (0.75, "general kenobi", "alice"),
        "bob/utt3": (0.6, "you are a bold one", "bob"),
    }
    for cut_id, (seconds, text, speaker) in expect.items():
        cut, sup = cuts[cut_id], cuts[cut_id].supervisions[0]
        assert cut.duration == pytest.approx(seconds, abs=1e-4)
        assert (sup.text, sup.speaker, sup.language) == (text, speaker, "en")
    assert cuts["bob/utt3"].sampling_rate == 22050
    assert load_cut_audio(cuts["bob/utt3"]).shape == (9600,)  # 0.6 s at 16 kHz
    assert [c.id for c in load_cuts(tmp_path / "out" / "cuts_all.jsonl.gz")] == sorted(expect)
    assert read_skipped(tmp_path / "out") == []


def test_kaldi_text_utt2spk_spk2gender(good_folder, tmp_path):
    (tmp_path / "text").write_text("alice/utt1 HELLO THERE\nutt2 GENERAL KENOBI\nutt3 BOLD\nghost NOT A FILE\n")
    (tmp_path / "utt2spk").write_text("alice/utt1 A\nutt2 A\nbob/utt3 B\n")
    (tmp_path / "spk2gender").write_text("A f\nB m\n")
    splits = prepare_folder(
        good_folder,
        tmp_path / "out",
        split="train",
        text_file=tmp_path / "text",
        utt2spk=tmp_path / "utt2spk",
        spk2gender=tmp_path / "spk2gender",
    )
    sups = {c.id: c.supervisions[0] for c in splits["train"]}
    assert {k: (s.text, s.speaker, s.gender) for k, s in sups.items()} == {
        "alice/utt1": ("HELLO THERE", "A", "f"),
        "alice/session_2/utt2": ("GENERAL KENOBI", "A", "f"),  # matched by its unique file name
        "bob/utt3": ("BOLD", "B", "m"),
    }
    assert (tmp_path / "out" / "cuts_train.jsonl.gz").is_file()


def test_speaker_from_dir_negative_level(good_folder, tmp_path):
    splits = prepare_folder(good_folder, tmp_path / "out", speaker_from_dir=-1)
    assert {c.id: c.supervisions[0].speaker for c in splits["all"]} == {
        "alice/utt1": "alice",
        "alice/session_2/utt2": "session_2",
        "bob/utt3": "bob",
    }


@pytest.fixture()
def bad_folder(tmp_path) -> Path:
    """Good files next to each kind of bad input the importer must survive."""
    root = tmp_path / "messy"
    write_tone(root / "good.wav", 0.5)
    (root / "good.txt").write_text("fine")
    write_tone(root / "stereo8k.wav", 0.5, rate=8000, channels=2)
    (root / "stereo8k.txt").write_text("eight kilohertz stereo")
    write_tone(root / "really_wav.flac", 0.6, format="WAV")  # wrong extension, readable contents
    (root / "really_wav.txt").write_text("wav named flac")
    (root / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (root / "corrupt.txt").write_text("random bytes")
    (root / "zero.wav").write_bytes(b"")
    (root / "zero.txt").write_text("zero bytes")
    (root / "text.wav").write_text("I am a text file with a .wav name\n" * 20)
    (root / "text.txt").write_text("not audio")
    write_tone(root / "tiny.wav", 0.01)  # 10 ms < MIN_SAMPLES
    (root / "tiny.txt").write_text("too short")
    write_tone(root / "untranscribed.wav", 0.5)  # no .txt
    return root


def test_bad_inputs_reported_and_skipped(bad_folder, tmp_path):
    out = tmp_path / "out"
    splits = prepare_folder(bad_folder, out, sibling_text=True)
    cuts = {c.id: c for c in splits["all"]}
    assert sorted(cuts) == ["good", "really_wav", "stereo8k"]

    stereo = cuts["stereo8k"]
    assert stereo.sampling_rate == 8000 and stereo.num_channels == 2
    assert stereo.duration == pytest.approx(0.5)
    wav = load_cut_audio(stereo)
    assert wav.ndim == 1 and wav.shape == (8000,) and wav.dtype == np.float32  # 16 kHz mono
    assert cuts["really_wav"].duration == pytest.approx(0.6)
    assert load_cut_audio(cuts["really_wav"]).shape == (9600,)

    skipped = dict(read_skipped(out))
    assert sorted(Path(p).name for p in skipped) == [
        "corrupt.wav",
        "text.wav",
        "tiny.wav",
        "untranscribed.wav",
        "zero.wav",
    ]
    problems = {Path(p).name: problem for p, problem in skipped.items()}
    assert "0 bytes" in problems["zero.wav"]
    assert "cannot read audio header" in problems["corrupt.wav"]
    assert "cannot read audio header" in problems["text.wav"]
    assert "too short" in problems["tiny.wav"]
    assert "no transcript" in problems["untranscribed.wav"]
    lines = (out / "skipped.tsv").read_text().splitlines()
    assert lines[0] == "path\tproblem\tsplits" and all(line.count("\t") == 2 for line in lines)
    assert all(line.endswith("\tall") for line in lines[1:])
    assert all(Path(line.split("\t")[0]).is_absolute() for line in lines[1:])


def test_allow_missing_text_keeps_file(bad_folder, tmp_path):
    splits = prepare_folder(bad_folder, tmp_path / "out", sibling_text=True, allow_missing_text=True)
    cuts = {c.id: c for c in splits["all"]}
    assert cuts["untranscribed"].supervisions[0].text is None
    assert "untranscribed.wav" not in {Path(p).name for p, _ in read_skipped(tmp_path / "out")}


def test_no_annotations_needed_keeps_untranscribed(bad_folder, tmp_path):
    splits = prepare_folder(bad_folder, tmp_path / "out")
    assert sorted(c.id for c in splits["all"]) == ["good", "really_wav", "stereo8k", "untranscribed"]


def test_verify_decodes(tmp_path):
    import soundfile as sf

    root = tmp_path / "v"
    write_tone(root / "ok.wav", 0.5)
    nan = np.full(8000, np.nan, dtype=np.float32)
    sf.write(str(root / "nan.wav"), nan, 16000, subtype="FLOAT")  # a valid header, unusable samples
    assert sorted(c.id for c in prepare_folder(root, tmp_path / "out")["all"]) == ["nan", "ok"]
    assert [c.id for c in prepare_folder(root, tmp_path / "out2", verify=True)["all"]] == ["ok"]
    ((path, problem),) = read_skipped(tmp_path / "out2")
    assert path == str(root / "nan.wav") and "NaN" in problem


def test_strict_raises_with_file_name(bad_folder, tmp_path):
    with pytest.raises(AudioError, match="corrupt.wav") as err:
        prepare_folder(bad_folder, tmp_path / "out", sibling_text=True, strict=True)
    assert "strict" in str(err.value)
    root = tmp_path / "only_missing_text"
    write_tone(root / "a.wav", 0.5)
    with pytest.raises(ValueError, match="a.wav: no transcript"):
        prepare_folder(root, tmp_path / "out2", sibling_text=True, strict=True)


def test_duplicate_ids_and_nothing_usable(tmp_path):
    root = tmp_path / "dup"
    write_tone(root / "a.wav", 0.5)
    write_tone(root / "a.flac", 0.5)
    splits = prepare_folder(root, tmp_path / "out")
    assert [c.recording.sources[0].source for c in splits["all"]] == [str(root / "a.flac")]
    assert "duplicate cut id 'a'" in read_skipped(tmp_path / "out")[0][1]

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable utterances"):
        prepare_folder(junk, tmp_path / "out2")
    assert read_skipped(tmp_path / "out2")[0][0] == str(junk / "x.wav")
    with pytest.raises(ValueError, match="no audio files found"):
        prepare_folder(tmp_path / "out2", tmp_path / "out3")


def test_option_errors(good_folder, tmp_path):
    with pytest.raises(ValueError, match="not both"):
        prepare_folder(good_folder, tmp_path / "o", text_file=tmp_path / "t", sibling_text=True)
    with pytest.raises(FileNotFoundError, match="utt2spk"):
        prepare_folder(good_folder, tmp_path / "o", utt2spk=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not found"):
        prepare_folder(tmp_path / "nowhere", tmp_path / "o")


def test_cli(bad_folder, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["folder", str(bad_folder), str(out), "--sibling-text", "--split", "train", "--language", "en"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "skipped 5 input(s)" in printed and "skipped.tsv" in printed
    assert len(load_cuts(out / "cuts_train.jsonl.gz")) == 3

    rc = main(["folder", str(bad_folder), str(tmp_path / "out2"), "--sibling-text", "--strict"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "corrupt.wav" in err and "strict" in err
    for bad_args in (["--speaker-from-dir", "0"], ["--sibling-text", "--text-file", "t"]):
        with pytest.raises(SystemExit) as exit_:
            main(["folder", str(bad_folder), str(out), *bad_args])
        assert exit_.value.code == 2


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_linked_folders_followed_once(tmp_path):
    real = tmp_path / "real"
    write_tone(real / "a.wav", 0.5)
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(real, root / "linked")
    os.symlink(root, root / "linked" / "loop")  # a cycle must not hang the walk
    splits = prepare_folder(root, tmp_path / "out")
    assert [c.id for c in splits["all"]] == ["linked/a"]


def test_skip_lists_per_split_and_names_with_tabs_and_newlines(tmp_path, capsys):
    """A second run for another split keeps the first run's skip list; names with a tab or a
    newline keep their row (escaped); the printed count is this run's."""
    train, dev = tmp_path / "train", tmp_path / "dev"
    write_tone(train / "good.wav", 0.5)
    (train / "bad\tname.wav").write_bytes(b"")
    write_tone(dev / "good.wav", 0.5)
    (dev / "two\nlines.wav").write_bytes(b"")
    (dev / "zero.wav").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["folder", str(train), str(out), "--split", "train"]) == 0
    assert "skipped 1 input(s)" in capsys.readouterr().out
    assert main(["folder", str(dev), str(out), "--split", "dev"]) == 0
    assert "skipped 2 input(s)" in capsys.readouterr().out
    rows = read_skipped(out)
    assert sorted(Path(p).name for p, _ in rows) == ["bad\tname.wav", "two\nlines.wav", "zero.wav"]
    assert sorted(Path(p).name for p, _ in read_skipped(out, ["train"])) == ["bad\tname.wav"]
    lines = (out / "skipped.tsv").read_text().split("\n")
    assert len(lines) == 5 and all(line.count("\t") == 2 for line in lines[:-1])  # header, 3 rows, final newline
    assert main(["folder", str(dev), str(out), "--split", "dev"]) == 0  # the dev run again: its rows replaced, not doubled
    assert len(read_skipped(out)) == 3


def test_byte_order_marks_are_stripped(good_folder, tmp_path):
    """A UTF-8 BOM at the head of a transcript or of a Kaldi text file is not text."""
    (good_folder / "alice" / "utt1.txt").write_bytes("\ufeffhello there\n".encode("utf-8"))
    (good_folder / "bob" / "utt3.txt").write_bytes("\ufeff".encode("utf-8"))  # BOM only: empty
    splits = prepare_folder(good_folder, tmp_path / "out", sibling_text=True, speaker_from_dir=1)
    texts = {c.id: c.supervisions[0].text for c in splits["all"]}
    assert texts["alice/utt1"] == "hello there"
    assert "bob/utt3" not in texts  # an empty transcript: skipped like a missing one
    assert any("utt3" in p for p, _ in read_skipped(tmp_path / "out"))
    (tmp_path / "text").write_bytes("\ufeffalice/utt1 HELLO THERE\nutt2 GENERAL KENOBI\nutt3 BOLD\n".encode("utf-8"))
    splits = prepare_folder(good_folder, tmp_path / "out2", split="train", text_file=tmp_path / "text")
    texts = {c.id: c.supervisions[0].text for c in splits["train"]}
    assert texts["alice/utt1"] == "HELLO THERE" and len(texts) == 3
