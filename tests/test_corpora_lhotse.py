"""Corpus preparers that wrap lhotse's recipes (LibriSpeech, Libri-Light, Common Voice, FLEURS) and
VoxCeleb, each on a tiny fake tree in the corpus's real layout (see corpus_fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_fakes import (
    CV_ROWS,
    FLEURS_ROWS,
    LIBRILIGHT_FILES,
    LIBRISPEECH_GENDERS,
    LIBRISPEECH_UTTS,
    VOX1_FILES,
    VOX1_SPEAKERS,
    make_commonvoice,
    make_fleurs_hf,
    make_fleurs_lhotse,
    make_librilight,
    make_librispeech,
    make_voxceleb1,
    make_voxceleb2,
)

from speechssl.cli.prepare import main
from speechssl.data.corpora import (
    prepare_commonvoice,
    prepare_fleurs,
    prepare_librilight,
    prepare_librispeech,
    prepare_voxceleb,
    read_skipped,
)
from speechssl.data.manifest import find_splits, load_cuts

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases


def _on_disk(out_dir: Path) -> dict:
    return {name: load_cuts(path) for name, path in find_splits(out_dir).items()}


def _sup(cut):
    assert len(cut.supervisions) == 1
    return cut.supervisions[0]


# ---------------------------------------------------------------- LibriSpeech
def test_librispeech_library(tmp_path):
    corpus = make_librispeech(tmp_path)
    splits = prepare_librispeech(corpus, tmp_path / "out")
    assert set(splits) == set(LIBRISPEECH_UTTS)
    for part, utts in LIBRISPEECH_UTTS.items():
        cuts = splits[part]
        assert sorted(c.id for c in cuts) == sorted(utts)
        for cut in cuts:
            seconds, text = utts[cut.id]
            sup = _sup(cut)
            assert cut.duration == pytest.approx(seconds)
            assert sup.text == text
            assert sup.speaker == cut.id.split("-")[0]
            assert sup.gender == LIBRISPEECH_GENDERS[sup.speaker]
            assert sup.language == "en"
            assert Path(cut.recording.sources[0].source).is_absolute()
    on_disk = _on_disk(tmp_path / "out")
    assert {k: sorted(c.id for c in v) for k, v in on_disk.items()} == {
        k: sorted(v) for k, v in LIBRISPEECH_UTTS.items()
    }
    assert read_skipped(tmp_path / "out") == []
    assert (tmp_path / "out" / "skipped.tsv").read_text() == "path\tproblem\tsplits\n"


def test_librispeech_parts_and_parent_folder(tmp_path):
    make_librispeech(tmp_path)
    splits = prepare_librispeech(tmp_path, tmp_path / "out", parts=["test-clean"])  # the folder holding LibriSpeech/
    assert list(splits) == ["test-clean"]
    assert sorted(p.name for p in (tmp_path / "out").glob("cuts_*")) == ["cuts_test-clean.jsonl.gz"]
    with pytest.raises(ValueError, match="train-clean-100"):
        prepare_librispeech(tmp_path, tmp_path / "out2", parts=["train-clean-100"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread, lhotse's last-resort backend
def test_librispeech_unreadable_file_is_named(tmp_path):
    corpus = make_librispeech(tmp_path)
    bad = corpus / "test-clean" / "1089" / "134686" / "1089-134686-0000.flac"
    bad.write_bytes(b"this is not a flac file" * 10)
    with pytest.raises(ValueError, match="1089-134686-0000.flac") as err:
        prepare_librispeech(corpus, tmp_path / "out")
    assert "skipped.tsv" in str(err.value)
    assert [p for p, _ in read_skipped(tmp_path / "out")] == [str(bad)]


def test_librispeech_cli(tmp_path, capsys):
    corpus = make_librispeech(tmp_path)
    assert main(["librispeech", str(corpus), str(tmp_path / "out"), "--parts", "dev-clean", "-q"]) == 0
    out = capsys.readouterr().out
    assert "dev-clean" in out and "cuts_dev-clean.jsonl.gz" in out
    assert [c.id for c in load_cuts(tmp_path / "out" / "cuts_dev-clean.jsonl.gz")] == sorted(
        LIBRISPEECH_UTTS["dev-clean"]
    )


def test_librispeech_cli_wrong_layout(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["librispeech", str(tmp_path / "empty"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "expected LibriSpeech part folders" in err and str(tmp_path / "empty") in err
    assert main(["librispeech", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    assert "not found" in capsys.readouterr().err


# ---------------------------------------------------------------- Libri-Light
def test_librilight_segments(tmp_path):
    corpus = make_librilight(tmp_path)
    splits = prepare_librilight(corpus, tmp_path / "out")
    assert set(splits) == {"small", "medium"}
    for subset, files in LIBRILIGHT_FILES.items():
        expected = {}
        for rel, (_, spk, vad) in files.items():
            for n, (start, end) in enumerate(vad):
                expected[f"{subset}/{rel}_{n}"] = (start, end - start, spk)
        cuts = splits[subset]
        assert sorted(c.id for c in cuts) == sorted(expected)
        for cut in cuts:
            start, duration, spk = expected[cut.id]
            assert cut.start == pytest.approx(start)
            assert cut.duration == pytest.approx(duration)
            assert _sup(cut).speaker == spk
            assert _sup(cut).language == "en"
    assert list(prepare_librilight(corpus, tmp_path / "out2", parts=["medium"])) == ["medium"]
    with pytest.raises(ValueError, match="large"):
        prepare_librilight(corpus, tmp_path / "out3", parts=["large"])


def test_librilight_cli(tmp_path, capsys):
    corpus = make_librilight(tmp_path)
    assert main(["librilight", str(corpus), str(tmp_path / "out"), "--parts", "small", "-q"]) == 0
    assert set(find_splits(tmp_path / "out")) == {"small"}
    assert "small" in capsys.readouterr().out


# ---------------------------------------------------------------- VoxCeleb
def test_voxceleb1_and_2(tmp_path):
    v1, v2 = make_voxceleb1(tmp_path), make_voxceleb2(tmp_path)
    splits = prepare_voxceleb(v1, tmp_path / "out", voxceleb2_dir=v2)
    expected = {"train": set(), "test": set()}
    for rel in VOX1_FILES:
        spk = rel.split("/")[0]
        expected["test" if VOX1_SPEAKERS[spk][1] == "test" else "train"].add(rel.replace("/", "-"))
    expected["train"] |= {"id00012-21Uxsk56VDQ-00001", "id00015-0fijmz4vTVU-00001"}
    assert {k: {c.id for c in v} for k, v in splits.items()} == expected
    for cut in splits["test"]:
        sup = _sup(cut)
        assert sup.speaker == cut.id.split("-")[0]
        assert sup.gender == VOX1_SPEAKERS[sup.speaker][0]
        assert sup.custom["dataset"] == "voxceleb1" and sup.custom["nationality"] == "USA"
    durations = {c.id: c.duration for c in splits["train"]}
    assert durations["id10001-1zcIwhmdeo4-00002"] == pytest.approx(0.6)
    # the trial list with cut ids; the trial naming an unknown utterance is dropped
    assert (tmp_path / "out" / "trials_veri_test2.txt").read_text().splitlines() == [
        "1 id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008",
        "0 id10270-x6uYqmx31kE-00001 id10271-1gtz-CUIygI-00001",
    ]


def test_voxceleb2_only_and_unknown_speaker(tmp_path):
    v2 = make_voxceleb2(tmp_path)
    stray = v2 / "dev" / "aac" / "id09999" / "abc" / "00001.wav"
    stray.parent.mkdir(parents=True)
    stray.write_bytes((v2 / "dev" / "aac" / "id00012" / "21Uxsk56VDQ" / "00001.wav").read_bytes())
    splits = prepare_voxceleb(v2, tmp_path / "out")
    assert list(splits) == ["train"] and len(splits["train"]) == 2
    skipped = read_skipped(tmp_path / "out")
    assert skipped[0][0] == str(stray) and "id09999" in skipped[0][1]
    with pytest.raises(ValueError, match="id09999"):
        prepare_voxceleb(v2, tmp_path / "out2", strict=True)


def test_voxceleb_cli(tmp_path, capsys):
    v1 = make_voxceleb1(tmp_path)
    assert main(["voxceleb", str(v1), str(tmp_path / "out"), "--num-jobs", "2", "-q"]) == 0
    assert set(find_splits(tmp_path / "out")) == {"train", "test"}
    assert main(["voxceleb", str(tmp_path), str(tmp_path / "out2")]) == 1
    assert "vox1_meta.csv" in capsys.readouterr().err


# ---------------------------------------------------------------- Common Voice
def test_commonvoice_mp3(tmp_path):
    corpus = make_commonvoice(tmp_path)
    splits = prepare_commonvoice(corpus, tmp_path / "out")
    assert set(splits) == {"train", "dev", "test"}
    genders = {"female_feminine": "f", "female": "f", "male": "m", "": None}
    for split, rows in CV_ROWS.items():
        cuts = {c.id: c for c in splits[split]}
        assert sorted(cuts) == sorted(Path(r[0]).stem for r in rows)
        for clip, client, sentence, gender, seconds in rows:
            cut = cuts[Path(clip).stem]
            sup = _sup(cut)
            assert cut.sampling_rate == 48000
            assert cut.duration == pytest.approx(seconds, abs=0.03)  # MP3 frames
            assert (sup.text, sup.speaker, sup.language, sup.gender) == (sentence, client, "cy", genders[gender])
            assert cut.recording.sources[0].source.endswith(clip)


def test_commonvoice_cli_language_folder(tmp_path, capsys):
    corpus = make_commonvoice(tmp_path)
    # a single language folder works as CORPUS_DIR too
    assert main(["commonvoice", str(corpus / "cy"), str(tmp_path / "out"), "--splits", "dev", "-q"]) == 0
    assert set(find_splits(tmp_path / "out")) == {"dev"}
    assert main(["commonvoice", str(corpus), str(tmp_path / "out2"), "--languages", "xx"]) == 1
    assert "xx" in capsys.readouterr().err


# ---------------------------------------------------------------- FLEURS
@pytest.mark.parametrize("make", [make_fleurs_lhotse, make_fleurs_hf], ids=["lhotse-layout", "google-layout"])
def test_fleurs_layouts(tmp_path, make):
    corpus = make(tmp_path)
    splits = prepare_fleurs(corpus, tmp_path / "out")
    assert set(splits) == {"train", "dev", "test"}
    for split, rows in FLEURS_ROWS.items():
        cuts = {c.id: c for c in splits[split]}
        repeats: dict[str, int] = {}
        for sid, stem, raw, text, seconds, gender in rows:
            repeats[sid] = repeats.get(sid, 0) + 1
            cut = cuts[f"{sid}_{repeats[sid]}_{stem}"]
            sup = _sup(cut)
            assert cut.duration == pytest.approx(seconds)
            assert (sup.text, sup.language, sup.gender, sup.speaker) == (text, "en_us", gender[0].lower(), None)
            assert sup.custom == {"raw_text": raw, "sentence_id": sid}
        assert len(cuts) == len(rows)


def test_fleurs_cli(tmp_path, capsys):
    corpus = make_fleurs_hf(tmp_path)
    assert main(["fleurs", str(corpus), str(tmp_path / "out"), "--languages", "en_us", "-q"]) == 0
    assert set(find_splits(tmp_path / "out")) == {"train", "dev", "test"}
    assert main(["fleurs", str(tmp_path / "out"), str(tmp_path / "out2")]) == 1
    assert "expected FLEURS language folders" in capsys.readouterr().err


def test_fleurs_missing_audio(tmp_path):
    # google/fleurs layout (read here): the missing file is reported and skipped
    hf = make_fleurs_hf(tmp_path)
    gone = hf / "en_us" / "audio" / "dev" / "1003119935936341070.wav"
    gone.unlink()
    splits = prepare_fleurs(hf, tmp_path / "out")
    assert "dev" not in splits and set(splits) == {"train", "test"}
    ((path, problem),) = read_skipped(tmp_path / "out")
    assert path == str(gone) and "not found" in problem
    # lhotse's layout: lhotse stops; the error names the file and it is listed
    lh = make_fleurs_lhotse(tmp_path)
    gone = lh / "en_us" / "dev" / "1003119935936341070.wav"
    gone.unlink()
    with pytest.raises(ValueError, match="missing audio file: .*1003119935936341070.wav"):
        prepare_fleurs(lh, tmp_path / "out2")
    assert [p for p, _ in read_skipped(tmp_path / "out2")] == [str(gone)]
