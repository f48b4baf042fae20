"""Tiny fake corpus trees in each corpus's real layout, for the corpus preparation tests.

Audio is a short sine (+ a little noise) written with soundfile; every builder returns the facts
the tests assert against.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf


def write_tone(
    path: Path,
    seconds: float = 0.5,
    *,
    rate: int = 16000,
    channels: int = 1,
    freq: float = 220.0,
    format: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a sine + noise file; the format follows the extension unless ``format`` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    wav = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    data = np.stack([wav] * channels, axis=1).astype(np.float32)  # (S, C)
    sf.write(str(path), data, rate, format=format)
    return path


# ---------------------------------------------------------------- LibriSpeech
LIBRISPEECH_UTTS = {
    # part -> {utt id: (seconds, transcript)}
    "dev-clean": {
        "84-121123-0000": (0.5, "GO DO YOU HEAR"),
        "84-121123-0001": (0.75, "BUT IN LESS THAN FIVE MINUTES"),
        "174-50561-0000": (0.6, "FORGOTTEN TOO THE NAME OF GILLIAN"),
    },
    "test-clean": {
        "1089-134686-0000": (1.0, "HE HOPED THERE WOULD BE STEW FOR DINNER"),
    },
}
LIBRISPEECH_GENDERS = {"84": "f", "174": "m", "1089": "m"}


def make_librispeech(root: Path) -> Path:
    """``LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` + ``.trans.txt`` + SPEAKERS.TXT."""
    corpus = root / "LibriSpeech"
    trans: dict[Path, list[str]] = {}
    for part, utts in LIBRISPEECH_UTTS.items():
        for i, (utt, (seconds, text)) in enumerate(utts.items()):
            spk, chapter, _ = utt.split("-")
            folder = corpus / part / spk / chapter
            write_tone(folder / f"{utt}.flac", seconds, seed=i)
            trans.setdefault(folder / f"{spk}-{chapter}.trans.txt", []).append(f"{utt} {text}")
    for path, lines in trans.items():
        path.write_text("\n".join(lines) + "\n")
    speakers = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
    speakers += [
        f"{spk:<5}| {g.upper()} | dev-clean        | 8.02 | Reader {spk}" for spk, g in LIBRISPEECH_GENDERS.items()
    ]
    (corpus / "SPEAKERS.TXT").write_text("\n".join(speakers) + "\n")
    return corpus


# ---------------------------------------------------------------- LibriLight
# file (relative to the subset folder) -> (seconds, speaker, voice activity segments)
LIBRILIGHT_FILES = {
    "small": {
        "100/sea_fairies_0812_librivox_64kb_mp3/01_baum_sea_fairies_64kb": (1.0, "100", [[0.0, 0.4], [0.5, 0.95]]),
        "103/notebook_1010_librivox/notebook_01_64kb": (0.6, "103", [[0.1, 0.6]]),
    },
    "medium": {
        "200/book_a/chapter_01_64kb": (0.5, "200", [[0.0, 0.5]]),
    },
}


def make_librilight(root: Path) -> Path:
    """``<subset>/<spk>/<book>/<file>.flac`` + a ``.json`` with speaker and voice_activity."""
    corpus = root / "librilight"
    for subset, files in LIBRILIGHT_FILES.items():
        for i, (rel, (seconds, spk, vad)) in enumerate(files.items()):
            write_tone(corpus / subset / f"{rel}.flac", seconds, seed=i)
            meta = {"speaker": spk, "book_meta": {"title": "t"}, "snr": 10.0, "voice_activity": vad}
            (corpus / subset / f"{rel}.json").write_text(json.dumps(meta))
    return corpus


# ---------------------------------------------------------------- VoxCeleb
VOX1_SPEAKERS = {  # id -> (gender, set)
    "id10001": ("m", "dev"),
    "id10002": ("f", "dev"),
    "id10270": ("m", "test"),
    "id10271": ("f", "test"),
}
VOX1_FILES = [  # speaker/youtube/utt
    "id10001/1zcIwhmdeo4/00001",
    "id10001/1zcIwhmdeo4/00002",
    "id10002/6WO410QOeuo/00001",
    "id10270/x6uYqmx31kE/00001",
    "id10270/8jEAjG6SegY/00008",
    "id10271/1gtz-CUIygI/00001",
]
VOX1_TRIALS = [
    "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav",
    "0 id10270/x6uYqmx31kE/00001.wav id10271/1gtz-CUIygI/00001.wav",
    "0 id10270/x6uYqmx31kE/00001.wav id10999/nonexist/00001.wav",
]
VOX2_SPEAKERS = {"id00012": ("m", "dev"), "id00015": ("f", "test")}
VOX2_FILES = ["dev/aac/id00012/21Uxsk56VDQ/00001", "aac/id00015/0fijmz4vTVU/00001"]


def make_voxceleb1(root: Path) -> Path:
    """``wav/<id>/<youtube id>/<nnnnn>.wav`` + tab-separated ``vox1_meta.csv`` + ``veri_test2.txt``."""
    corpus = root / "voxceleb1"
    for i, rel in enumerate(VOX1_FILES):
        write_tone(corpus / "wav" / f"{rel}.wav", 0.5 + 0.1 * i, seed=i)
    lines = ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"]
    lines += [f"{spk}\tName_{spk}\t{g}\tUSA\t{s}" for spk, (g, s) in VOX1_SPEAKERS.items()]
    (corpus / "vox1_meta.csv").write_text("\n".join(lines) + "\n")
    (corpus / "veri_test2.txt").write_text("\n".join(VOX1_TRIALS) + "\n")
    return corpus


def make_voxceleb2(root: Path) -> Path:
    """``dev/aac/<id>/<yt>/<n>`` and ``aac/<id>/<yt>/<n>`` (converted to .wav) + ``vox2_meta.csv``."""
    corpus = root / "voxceleb2"
    for i, rel in enumerate(VOX2_FILES):
        write_tone(corpus / f"{rel}.wav", 0.5, seed=i)
    lines = ["VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set "]
    lines += [f"{spk} ,n{spk[2:]} ,{g} ,{s} " for spk, (g, s) in VOX2_SPEAKERS.items()]
    (corpus / "vox2_meta.csv").write_text("\n".join(lines) + "\n")
    return corpus


# ---------------------------------------------------------------- CommonVoice
CV_HEADER = [
    "client_id",
    "path",
    "sentence_id",
    "sentence",
    "sentence_domain",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "variant",
    "locale",
    "segment",
]
CV_ROWS = {  # split -> [(clip name, client, sentence, gender, seconds)]
    "train": [
        ("common_voice_cy_100.mp3", "a" * 64, "Mae hi'n braf.", "female_feminine", 0.6),
        ("common_voice_cy_101.mp3", "b" * 64, "Diolch yn fawr.", "male", 0.8),
    ],
    "dev": [("common_voice_cy_200.mp3", "c" * 64, "Bore da.", "", 0.5)],
    "test": [("common_voice_cy_300.mp3", "a" * 64, "Nos da.", "female", 0.7)],
}


def make_commonvoice(root: Path, lang: str = "cy") -> Path:
    """``<release>/<lang>/clips/*.mp3`` + ``<lang>/<split>.tsv`` (MP3, as the real corpus ships)."""
    corpus = root / "cv-corpus-17.0-2024-03-15"
    lang_dir = corpus / lang
    lang_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in CV_ROWS.items():
        with open(lang_dir / f"{split}.tsv", "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(CV_HEADER)
            for i, (clip, client, sentence, gender, seconds) in enumerate(rows):
                write_tone(lang_dir / "clips" / clip, seconds, rate=48000, seed=i)
                w.writerow([client, clip, f"s{i}", sentence, "", 2, 0, "twenties", gender, "", "", lang, ""])
    return corpus


# ---------------------------------------------------------------- FLEURS
FLEURS_ROWS = {  # split -> [(sentence id, file stem, raw text, normalised text, seconds, gender)]
    "train": [
        ("1001", "10004088536354799741", "Hello, World.", "hello world", 0.5, "FEMALE"),
        ("1001", "10011136185468932457", "Hello, World.", "hello world", 0.6, "MALE"),
    ],
    "dev": [("2002", "1003119935936341070", "Good day.", "good day", 0.5, "MALE")],
    "test": [("3003", "10037424136003497327", "See you!", "see you", 0.7, "FEMALE")],
}


def _fleurs_tsv(path: Path, rows) -> None:
    lines = []
    for sid, stem, raw, text, seconds, gender in rows:
        chars = " ".join("|".join(text.split())) + " |"
        lines.append("\t".join([sid, f"{stem}.wav", raw, text, chars, str(int(seconds * 16000)), gender]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_fleurs_lhotse(root: Path, lang: str = "en_us") -> Path:
    """lhotse's download layout: ``<lang>/<split>/<file>.wav`` + ``metadata/<lang>/<split>.tsv``."""
    corpus = root / "fleurs"
    for split, rows in FLEURS_ROWS.items():
        for i, (_, stem, _, _, seconds, _) in enumerate(rows):
            write_tone(corpus / lang / split / f"{stem}.wav", seconds, seed=i)
        _fleurs_tsv(corpus / "metadata" / lang / f"{split}.tsv", rows)
    return corpus


def make_fleurs_hf(root: Path, lang: str = "en_us") -> Path:
    """The google/fleurs repository layout: ``<lang>/audio/<split>/<file>.wav`` + ``<lang>/<split>.tsv``."""
    corpus = root / "fleurs_hf"
    for split, rows in FLEURS_ROWS.items():
        for i, (_, stem, _, _, seconds, _) in enumerate(rows):
            write_tone(corpus / lang / "audio" / split / f"{stem}.wav", seconds, seed=i)
        _fleurs_tsv(corpus / lang / f"{split}.tsv", rows)
    return corpus


# ---------------------------------------------------------------- IEMOCAP
# session -> dialog -> [(utterance id, label, transcript or None)]
IEMOCAP_UTTS = {
    1: {
        "Ses01F_impro01": [
            ("Ses01F_impro01_F000", "neu", "Excuse me."),
            ("Ses01F_impro01_M000", "exc", "Do you have your forms?"),
            ("Ses01F_impro01_F001", "fru", "Yeah."),
        ],
        "Ses01M_script01_1": [
            ("Ses01M_script01_1_F000", "ang", "What the hell is this?"),
            ("Ses01M_script01_1_M000", "xxx", "Nothing."),
        ],
    },
    2: {
        "Ses02F_impro02": [
            ("Ses02F_impro02_F000", "sad", "I'm sorry."),
            ("Ses02F_impro02_M000", "hap", None),  # no transcript line
        ],
    },
}


def make_iemocap(root: Path) -> Path:
    """``IEMOCAP_full_release/Session<N>/{sentences/wav,dialog/EmoEvaluation,dialog/transcriptions}``."""
    corpus = root / "IEMOCAP_full_release"
    for session, dialogs in IEMOCAP_UTTS.items():
        sdir = corpus / f"Session{session}"
        for dialog, utts in dialogs.items():
            evals = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            trans = []
            t = 6.2901
            for i, (utt, label, text) in enumerate(utts):
                write_tone(sdir / "sentences" / "wav" / dialog / f"{utt}.wav", 0.5 + 0.1 * i, seed=i)
                evals += [
                    f"[{t:.4f} - {t + 1.9456:.4f}]\t{utt}\t{label}\t[2.5000, 3.0000, 3.5000]",
                    "C-E2:\tNeutral;\t()",
                    "C-E3:\tNeutral;\t()",
                    "A-E3:\tval 3; act 2; dom  2;\t()",
                    "",
                ]
                if text is not None:
                    trans.append(f"{utt} [{t:08.4f}-{t + 1.9456:08.4f}]: {text}")
                t += 3.0
            (sdir / "dialog" / "EmoEvaluation" / "Categorical").mkdir(parents=True, exist_ok=True)
            (sdir / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(evals) + "\n")
            # the release has per-annotator files in subfolders and macOS "._" files: both must be ignored
            (sdir / "dialog" / "EmoEvaluation" / "Categorical" / f"{dialog}_e1_cat.txt").write_text(
                f"{utts[0][0]} :Neutral state; ()\n"
            )
            (sdir / "dialog" / "EmoEvaluation" / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07junk")
            (sdir / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
            (sdir / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(trans) + "\n")
    return corpus
