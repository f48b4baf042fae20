"""IEMOCAP preparation on a fake release tree: sessions, labels, the 4-class merge, folds."""

from __future__ import annotations

import pytest
from corpus_fakes import IEMOCAP_UTTS, make_iemocap

from speechssl.cli.prepare import main
from speechssl.data.audio import AudioError
from speechssl.data.corpora import leave_one_session_out, prepare_iemocap, read_skipped
from speechssl.data.corpora.iemocap import FOUR_CLASS, speaker_of
from speechssl.data.manifest import find_splits, load_cuts


def _expected(four_class: bool) -> dict[str, dict[str, tuple]]:
    out: dict[str, dict[str, tuple]] = {}
    for session, dialogs in IEMOCAP_UTTS.items():
        for dialog, utts in dialogs.items():
            for i, (utt, label, text) in enumerate(utts):
                if four_class and label not in FOUR_CLASS:
                    continue
                out.setdefault(f"session{session}", {})[utt] = (label, text, 0.5 + 0.1 * i, dialog, session)
    return out


def test_four_class_merge_and_fields(tmp_path):
    corpus = make_iemocap(tmp_path)
    splits = prepare_iemocap(corpus, tmp_path / "out")
    expected = _expected(four_class=True)
    assert {k: sorted(c.id for c in v) for k, v in splits.items()} == {k: sorted(v) for k, v in expected.items()}
    for name, cuts in splits.items():
        for cut in cuts:
            label, text, seconds, dialog, session = expected[name][cut.id]
            sup = cut.supervisions[0]
            assert cut.duration == pytest.approx(seconds)
            assert sup.text == text
            assert sup.custom["emotion"] == label
            assert sup.custom["emotion4"] == {"exc": "hap"}.get(label, label)
            assert sup.custom["session"] == session and sup.custom["dialog"] == dialog
            assert sup.custom["improvised"] == ("impro" in dialog)
            assert (sup.custom["valence"], sup.custom["arousal"], sup.custom["dominance"]) == (2.5, 3.0, 3.5)
            assert sup.language == "en"
    cuts = {c.id: c.supervisions[0] for c in splits["session1"]}
    # excited is happy; the speaker is the utterance's actor, not the dialog's
    assert cuts["Ses01F_impro01_M000"].custom["emotion4"] == "hap"
    assert (cuts["Ses01F_impro01_M000"].speaker, cuts["Ses01F_impro01_M000"].gender) == ("Ses01M", "m")
    assert (cuts["Ses01M_script01_1_F000"].speaker, cuts["Ses01M_script01_1_F000"].gender) == ("Ses01F", "f")
    # fru and xxx are not in the 4 classes
    assert "Ses01F_impro01_F001" not in cuts and "Ses01M_script01_1_M000" not in cuts
    # a labelled utterance with no transcript line keeps text=None
    assert {c.id: c.supervisions[0].text for c in splits["session2"]}["Ses02F_impro02_M000"] is None
    assert set(find_splits(tmp_path / "out")) == {"session1", "session2"}
    assert read_skipped(tmp_path / "out") == []


def test_all_labels_and_sessions(tmp_path):
    corpus = make_iemocap(tmp_path)
    splits = prepare_iemocap(tmp_path, tmp_path / "out", four_class=False)  # the folder holding the release
    assert {k: len(v) for k, v in splits.items()} == {k: len(v) for k, v in _expected(False).items()}
    sups = {c.id: c.supervisions[0] for c in splits["session1"]}
    assert sups["Ses01F_impro01_F001"].custom["emotion"] == "fru"
    assert "emotion4" not in sups["Ses01F_impro01_F001"].custom
    assert list(prepare_iemocap(corpus, tmp_path / "out2", sessions=[2])) == ["session2"]
    with pytest.raises(ValueError, match="Session3"):
        prepare_iemocap(corpus, tmp_path / "out3", sessions=[3])


def test_leave_one_session_out(tmp_path):
    make_iemocap(tmp_path)
    prepare_iemocap(tmp_path, tmp_path / "out")
    loaded = {name: load_cuts(path) for name, path in find_splits(tmp_path / "out").items()}
    train, test = leave_one_session_out(loaded, 2)
    assert {c.supervisions[0].custom["session"] for c in train} == {1}
    assert {c.supervisions[0].custom["session"] for c in test} == {2}
    with pytest.raises(ValueError, match="session5"):
        leave_one_session_out(loaded, 5)


def test_missing_audio_skipped_or_strict(tmp_path):
    corpus = make_iemocap(tmp_path)
    wav = corpus / "Session2" / "sentences" / "wav" / "Ses02F_impro02" / "Ses02F_impro02_F000.wav"
    wav.unlink()
    splits = prepare_iemocap(corpus, tmp_path / "out")
    assert [c.id for c in splits["session2"]] == ["Ses02F_impro02_M000"]
    ((path, problem),) = read_skipped(tmp_path / "out")
    assert path == str(wav) and "missing" in problem
    with pytest.raises(AudioError, match="Ses02F_impro02_F000.wav"):
        prepare_iemocap(corpus, tmp_path / "out2", strict=True)


def test_speaker_of():
    assert speaker_of("Ses05M_script01_1b_F012") == ("Ses05F", "f")
    with pytest.raises(ValueError, match="not an IEMOCAP utterance id"):
        speaker_of("whatever")


def test_cli(tmp_path, capsys):
    corpus = make_iemocap(tmp_path)
    assert main(["iemocap", str(corpus), str(tmp_path / "out"), "--all-labels", "--sessions", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "session1" in out
    assert len(load_cuts(tmp_path / "out" / "cuts_session1.jsonl.gz")) == 5
    # wrong layout: a session without labels
    (tmp_path / "broken" / "Session1").mkdir(parents=True)
    assert main(["iemocap", str(tmp_path / "broken"), str(tmp_path / "out2")]) == 1
    assert "EmoEvaluation" in capsys.readouterr().err
