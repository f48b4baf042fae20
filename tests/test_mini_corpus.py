"""The synthetic mini corpus: contents, alignments, splits and trials, determinism, styles, resume,
errors and the CLI. Most tests read the session's tiny corpus (the ``mini_corpus`` fixture); the
builds made here use even smaller configs."""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse.supervision import AlignmentItem, SupervisionSegment

from speechssl.config import load_config
from speechssl.data.manifest import cuts_path, load_cuts
from speechssl.data.mini import (
    LANGUAGES,
    SIL,
    STYLES,
    MiniCorpusConfig,
    Speaker,
    frame_phone_labels,
    load_vocab,
    make_mini_corpus,
    make_trials,
    plan_corpus,
    prosody_for,
    render,
)
from speechssl.data.mini import espeak as es

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "dev", "test")


def _micro(**changes) -> MiniCorpusConfig:
    """A corpus of a few seconds: 3 speakers (one per split), 3 blocks of utterances."""
    base = dict(hours=0.01, utterances=18, num_speakers=3, languages=("en", "de", "fr"), min_words=2, max_words=4)
    base.update(changes)
    return MiniCorpusConfig(**base)


def _splits(out: Path) -> dict:
    return {s: load_cuts(cuts_path(out, s)) for s in SPLITS}


def _audio_hashes(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "wavs").rglob("*.flac"))
    }


def _manifest_text(out: Path, split: str) -> str:
    """The manifest's JSON lines with the folder's own path taken out (paths are absolute)."""
    return gzip.decompress(cuts_path(out, split).read_bytes()).decode().replace(str(out.resolve()), "OUT")


# --- the binding ---------------------------------------------------------------------------------


def test_event_struct_matches_speak_lib_h():
    # speak_lib.h: 6 ints, a pointer, then the id union (8 bytes) -> 40 bytes on LP64
    ptr = ctypes.sizeof(ctypes.c_void_p)
    assert es._Event.sample.offset == 20
    assert es._Event.user_data.offset == 24 if ptr == 8 else True
    assert es._Event.id.offset == 24 + ptr
    assert ctypes.sizeof(es._EventId) == 8 and ctypes.sizeof(es._Event) == 24 + 2 * ptr


def test_phoneme_events_give_ipa_phones_in_order():
    engine = es.get_espeak()
    engine.set_voice("en-us")
    engine.set_prosody(rate=175, volume=100, pitch=50, pitch_range=50)
    synth = engine.synthesize("she sells fish.")
    assert synth.sample_rate == 22050
    phones = [e for e in synth.events if e.kind == "phoneme"]
    names = [e.name for e in phones if e.name]
    assert "ʃ" in names and "f" in names  # IPA names, not espeak mnemonics ("S")
    samples = [e.sample for e in phones]
    assert samples == sorted(samples) and 0 <= samples[0] and samples[-1] <= synth.samples.shape[0]
    words = [e.text_position for e in synth.events if e.kind == "word" and e.text_position > 0]
    assert words == [1, 5, 11]  # 1-based character positions of she, sells, fish


def test_variants_are_listed_with_gender():
    from speechssl.data.mini.synth import FEMALE_VARIANTS, MALE_VARIANTS

    listed = {v.identifier.split("/")[-1]: v.gender for v in es.get_espeak().list_voices("variant")}
    for name in FEMALE_VARIANTS:
        assert listed.get(name) == "f", name
    for name in MALE_VARIANTS:
        assert listed.get(name) == "m", name


def test_vocabularies():
    assert {"en", "de", "es", "fr"} <= set(LANGUAGES)
    accents = {"de": "äöüß", "es": "áéíóúñ", "fr": "éèêàçô"}
    for code in LANGUAGES:
        words = load_vocab(code)
        assert len(words) >= 300 and len(set(words)) == len(words)
        assert all(w.strip() == w and " " not in w and "'" not in w for w in words)
        for ch in accents.get(code, ""):
            assert any(ch in w for w in words), (code, ch)


# --- the default plan (no synthesis) ----------------------------------------------------------


def test_default_plan_size_speakers_and_splits():
    plan = plan_corpus(MiniCorpusConfig())
    assert len(plan.speakers) >= 40
    genders = Counter(s.gender for s in plan.speakers)
    assert genders["f"] == genders["m"] == 20
    voices = [(s.variant, s.pitch_offset, s.rate_scale) for s in plan.speakers]
    assert len(set(voices)) == len(voices)
    by_id = {s.id: s for s in plan.speakers}
    for split, ids in plan.splits.items():
        spk = [by_id[i] for i in ids]
        assert {s.language for s in spk} == {"en", "de", "es", "fr"}, split
        assert {s.gender for s in spk} == {"f", "m"}, split
    assert not set(plan.splits["dev"]) & set(plan.splits["test"])
    assert not (set(plan.splits["dev"]) | set(plan.splits["test"])) & set(plan.splits["train"])
    # about an hour: utterance count times the expected length per utterance
    assert 1000 <= len(plan.utterances) <= 1500
    assert Counter(u.style for u in plan.utterances).keys() == {"neutral", "happy", "sad", "angry"}


def test_plan_is_a_function_of_the_config():
    a, b = plan_corpus(_micro()), plan_corpus(_micro())
    assert a == b
    assert plan_corpus(_micro(seed=1)).utterances != a.utterances


# --- the tiny corpus ---------------------------------------------------------------------------


def test_tiny_corpus_layout(mini_corpus):
    out = mini_corpus
    assert (out / ".complete").is_file()
    assert load_config(MiniCorpusConfig, out / "config.yaml") == MiniCorpusConfig.tiny()
    for split in SPLITS:
        assert cuts_path(out, split).is_file() and (out / f"styles_{split}.txt").is_file()
    for split in ("dev", "test"):
        assert (out / f"trials_{split}.txt").is_file()
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats) == {"train", "dev", "test", "all"} and stats["all"]["cuts"] == 80
    flacs = list((out / "wavs").rglob("*.flac"))
    assert len(flacs) == 80
    info = sf.info(str(flacs[0]))
    assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"


def test_tiny_corpus_statistics(mini_corpus):
    splits = _splits(mini_corpus)
    speakers = {}
    for split, cuts in splits.items():
        sups = [c.supervisions[0] for c in cuts]
        speakers[split] = {s.speaker for s in sups}
        assert {s.language for s in sups} == {"en", "de", "es", "fr"}, split
        assert {s.gender for s in sups} == {"f", "m"}, split
        assert {s.custom["style"] for s in sups} == {"neutral", "happy", "sad", "angry"}, split
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    assert sum(len(s) for s in speakers.values()) == 16


def test_supervisions(mini_corpus):
    for cuts in _splits(mini_corpus).values():
        for cut in cuts:
            (sup,) = cut.supervisions
            assert sup.id == cut.id == cut.recording.id == sup.recording_id
            assert cut.id.startswith(f"{sup.speaker}_{sup.language}_")
            assert sup.gender in ("m", "f") and sup.language in LANGUAGES
            assert sup.start == 0 and math.isclose(sup.duration, cut.duration)
            assert sup.custom["style"] in STYLES and "+" in sup.custom["voice"]
            assert set(sup.text.split()) <= set(load_vocab(sup.language))
            assert (
                Path(cut.recording.sources[0].source) == mini_corpus.resolve() / "wavs" / sup.speaker / f"{cut.id}.flac"
            )


def test_styles_files_match_the_supervisions(mini_corpus):
    for split, cuts in _splits(mini_corpus).items():
        lines = (mini_corpus / f"styles_{split}.txt").read_text().splitlines()
        assert lines == [f"{c.id} {c.supervisions[0].custom['style']}" for c in cuts]


def test_alignments_are_contiguous_and_cover_the_cut(mini_corpus):
    for cuts in _splits(mini_corpus).values():
        for cut in cuts:
            sup = cut.supervisions[0]
            for tier in ("phone", "word"):
                items = sup.alignment[tier]
                assert items[0].start == 0
                for a, b in zip(items, items[1:]):
                    assert math.isclose(a.end, b.start, abs_tol=1e-6), (cut.id, tier, a, b)
                assert all(it.duration > 0 for it in items)
                assert items[-1].end <= cut.duration + 1e-6
                covered = sum(it.duration for it in items)
                assert covered >= 0.95 * cut.duration
            phones = [it.symbol for it in sup.alignment["phone"]]
            assert sum(p != SIL for p in phones) >= 3 and all(p and " " not in p for p in phones)
            words = [it.symbol for it in sup.alignment["word"] if it.symbol != SIL]
            assert " ".join(words) == sup.text
            labels = frame_phone_labels(cut)
            assert len(labels) == int(cut.duration / 0.02 + 1e-6)
            assert set(labels) <= set(phones) and len(set(labels)) > 2
            assert len(frame_phone_labels(cut, num_frames=len(labels) - 1)) == len(labels) - 1


def test_frame_phone_labels_take_the_phone_at_the_frame_centre():
    items = [AlignmentItem("sil", 0.0, 0.015), AlignmentItem("a", 0.015, 0.04), AlignmentItem("b", 0.055, 0.045)]
    sup = SupervisionSegment("u", "u", start=0.0, duration=0.1, alignment={"phone": items})
    # centres 0.01 0.03 0.05 0.07 0.09 (then beyond the last item)
    assert frame_phone_labels(sup) == ["sil", "a", "a", "b", "b"]
    assert frame_phone_labels(sup, num_frames=6) == ["sil", "a", "a", "b", "b", SIL]
    assert frame_phone_labels(sup, frame_shift=0.05) == ["a", "b"]
    with pytest.raises(ValueError, match="no 'phone' alignment"):
        frame_phone_labels(SupervisionSegment("v", "v", 0.0, 1.0))


def test_trials_are_well_formed(mini_corpus):
    for split in ("dev", "test"):
        cuts = load_cuts(cuts_path(mini_corpus, split))
        speaker = {c.id: c.supervisions[0].speaker for c in cuts}
        lines = (mini_corpus / f"trials_{split}.txt").read_text().splitlines()
        trials = [tuple(line.split()) for line in lines]
        assert all(len(t) == 3 for t in trials)
        labels = Counter(t[0] for t in trials)
        assert set(labels) == {"0", "1"} and abs(labels["0"] - labels["1"]) <= 0.1 * len(trials)
        pairs = set()
        for label, a, b in trials:
            assert a in speaker and b in speaker and a != b
            assert (label == "1") == (speaker[a] == speaker[b])
            pairs.add(frozenset((a, b)))
        assert len(pairs) == len(trials)


def test_make_trials_balanced_and_seeded():
    cuts = [(f"s{s}_{i}", f"s{s}") for s in range(5) for i in range(6)]
    a = make_trials(cuts, 40, np.random.default_rng(0))
    assert a == make_trials(cuts, 40, np.random.default_rng(0))
    assert Counter(t[0] for t in a) == {1: 20, 0: 20}
    few = make_trials(cuts[:4], 100, np.random.default_rng(0))  # s0 with 4 cuts: targets only
    assert {t[0] for t in few} == {1} and len(few) == 6


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_files_for_any_num_jobs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    make_mini_corpus(a, _micro(), num_jobs=2)
    make_mini_corpus(b, _micro(), num_jobs=1)
    make_mini_corpus(c, _micro(seed=1), num_jobs=2)
    assert _audio_hashes(a) == _audio_hashes(b)
    for split in SPLITS:
        assert _manifest_text(a, split) == _manifest_text(b, split)
    for name in ("trials_dev.txt", "trials_test.txt", "styles_train.txt", "stats.json", "config.yaml"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert _audio_hashes(a) != _audio_hashes(c)
    assert _manifest_text(a, "train") != _manifest_text(c, "train")
    # rebuilt in the same place, the manifests are byte-identical too (no time stamps in the gzip)
    before = {split: cuts_path(a, split).read_bytes() for split in SPLITS}
    make_mini_corpus(a, _micro(), num_jobs=1, overwrite=True)
    assert {split: cuts_path(a, split).read_bytes() for split in SPLITS} == before


# --- styles ------------------------------------------------------------------------------------


def _f0_and_rms(wav: np.ndarray) -> tuple[float, float]:
    import librosa

    f0 = librosa.yin(wav, fmin=50, fmax=600, sr=16000, frame_length=1024, hop_length=160)
    rms = librosa.feature.rms(y=wav, frame_length=1024, hop_length=160)[0][: f0.shape[0]]
    voiced = rms > 0.3 * rms.max()
    return float(np.median(f0[voiced])), float(np.sqrt(np.mean(wav**2)))


@pytest.mark.parametrize("gender,variant,language", [("f", "f3", "en"), ("m", "m3", "de")])
def test_styles_differ_acoustically(gender, variant, language):
    speaker = Speaker("spk", gender, language, variant, pitch_offset=0, range_offset=0, rate_scale=1.0)
    words = list(load_vocab(language)[40:48])
    out = {}
    for style in ("neutral", "happy", "sad", "angry"):
        r = render(words, voice=speaker.voice, prosody=prosody_for(speaker, STYLES[style]), language=language)
        f0, rms = _f0_and_rms(r.samples)
        out[style] = (f0, rms, r.duration)
    f0 = {k: v[0] for k, v in out.items()}
    rms = {k: v[1] for k, v in out.items()}
    dur = {k: v[2] for k, v in out.items()}
    assert f0["happy"] > 1.15 * f0["neutral"] > 1.3 * f0["sad"]  # pitch level
    assert dur["sad"] > 1.2 * dur["neutral"] > 1.2 * dur["angry"]  # rate
    assert rms["angry"] > 1.3 * rms["neutral"] > 1.5 * rms["sad"]  # loudness
    assert rms["happy"] > rms["neutral"] and dur["happy"] < dur["neutral"]


# --- the output folder: complete marker, resume, conflicts ---------------------------------------


def test_complete_folder_is_left_alone_and_conflicts_are_refused(tmp_path):
    out = tmp_path / "mini"
    config = _micro()
    first = make_mini_corpus(out, config)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = make_mini_corpus(out, config)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes  # nothing rewritten
    assert again["all"].as_dict() == first["all"].as_dict()

    with pytest.raises(ValueError, match=r"different config \(seed: 0 -> 5\)"):
        make_mini_corpus(out, _micro(seed=5))
    (out / "keep.txt").write_text("not ours")
    make_mini_corpus(out, _micro(seed=5), overwrite=True)
    assert load_config(MiniCorpusConfig, out / "config.yaml").seed == 5
    assert (out / "keep.txt").read_text() == "not ours"  # overwrite removes only our files

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no mini corpus"):
        make_mini_corpus(foreign, config)


def test_interrupted_run_resumes_to_the_same_corpus(tmp_path):
    out = tmp_path / "mini"
    config = _micro()
    make_mini_corpus(out, config)
    reference = _audio_hashes(out)
    manifests = {s: _manifest_text(out, s) for s in SPLITS}
    plan = plan_corpus(config)
    first_block = [u.cut_id for u in plan.utterances[:8]]
    cuts = {c.id: c for cs in _splits(out).values() for c in cs}

    # what an interruption after the first block leaves: the marker and manifests not yet written,
    # the journal holding the first block, the other blocks' audio missing or half written
    (out / ".complete").unlink()
    for split in SPLITS:
        cuts_path(out, split).unlink()
    (out / ".journal.jsonl").write_text(json.dumps([cuts[i].to_dict() for i in first_block]) + '\n{"torn')
    kept = {i: cuts[i].recording.sources[0].source for i in first_block}
    kept_mtime = {i: Path(p).stat().st_mtime_ns for i, p in kept.items()}
    for u in plan.utterances[8:]:
        Path(cuts[u.cut_id].recording.sources[0].source).unlink()
    Path(cuts[plan.utterances[-1].cut_id].recording.sources[0].source).write_bytes(b"partial")

    make_mini_corpus(out, config)
    assert (out / ".complete").is_file() and not (out / ".journal.jsonl").exists()
    assert {i: Path(p).stat().st_mtime_ns for i, p in kept.items()} == kept_mtime  # first block not redone
    assert _audio_hashes(out) == reference
    assert {s: _manifest_text(out, s) for s in SPLITS} == manifests


# --- bad input -----------------------------------------------------------------------------------


def test_unknown_language_or_style_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown language 'xx'; valid languages: en, de, es, fr"):
        MiniCorpusConfig(languages=("en", "xx"))
    with pytest.raises(ValueError, match="unknown style 'bored'; valid styles: neutral, happy, sad, angry"):
        MiniCorpusConfig(styles=("happy", "bored"))
    with pytest.raises(ValueError, match="num_speakers"):
        MiniCorpusConfig(num_speakers=2)
    with pytest.raises(ValueError, match="min_words"):
        MiniCorpusConfig(min_words=5, max_words=3)


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_print_config(tmp_path, capsys):
    from speechssl.cli.make_mini_corpus import main

    assert (
        main([str(tmp_path / "x"), "--tiny", "--print-config", "--hours", "0.5", "--languages", "en,de", "seed=7"]) == 0
    )
    text = capsys.readouterr().out
    path = tmp_path / "printed.yaml"
    path.write_text(text)
    cfg = load_config(MiniCorpusConfig, path)
    expected = MiniCorpusConfig(
        hours=0.5,
        utterances=None,
        seed=7,
        num_speakers=16,
        languages=("en", "de"),
        min_words=3,
        max_words=6,
        max_trials=200,
    )
    assert cfg == expected
    assert not (tmp_path / "x").exists()


def test_cli_builds_and_reports(tmp_path, capsys):
    from speechssl.cli.make_mini_corpus import main

    out = tmp_path / "cli"
    argv = [
        str(out),
        "--tiny",
        "--num-speakers",
        "3",
        "--languages",
        "en,es,fr",
        "--styles",
        "sad,happy",
        "-q",
        "utterances=12",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "made the mini corpus" in printed and "languages: en (4), es (4), fr (4)" in printed
    assert "styles: happy (6), sad (6)" in printed and "phone inventory:" in printed
    assert (out / ".complete").is_file()
    assert main(argv) == 0
    assert "already there" in capsys.readouterr().out


def test_cli_tiny_on_the_existing_tiny_corpus(mini_corpus, capsys):
    from speechssl.cli.make_mini_corpus import main

    assert main([str(mini_corpus), "--tiny", "-q"]) == 0  # same config: nothing to do
    assert "already there" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    from speechssl.cli.make_mini_corpus import main

    assert main([str(tmp_path / "x"), "--tiny", "--languages", "en,klingon"]) == 1
    err = capsys.readouterr().err
    assert "unknown language 'klingon'" in err and "en, de, es, fr" in err
    assert main([str(tmp_path / "x"), "--tiny", "--styles", "bored"]) == 1
    assert "valid styles" in capsys.readouterr().err
    assert main([str(tmp_path / "x"), "--tiny", "colour=red"]) == 1
    assert "unknown key 'colour'" in capsys.readouterr().err


# --- recipes -----------------------------------------------------------------------------------


def test_recipe_configs_load():
    assert load_config(MiniCorpusConfig, ROOT / "recipes/data/mini.yaml") == MiniCorpusConfig()
    assert load_config(MiniCorpusConfig, ROOT / "recipes/data/mini_tiny.yaml") == MiniCorpusConfig.tiny()
