"""egs/voxceleb/sv/run.sh and egs/iemocap/er/run.sh: their data stages run for real on fake corpus
trees (tests/corpus_fakes.py); their training, evaluation and results stages in dry runs, and their
options."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from corpus_fakes import (
    IEMOCAP_UTTS,
    VOX1_FILES,
    VOX1_SPEAKERS,
    VOX1_TRIALS,
    VOX2_FILES,
    make_iemocap,
    make_voxceleb1,
    make_voxceleb2,
)
from recipe_runner import cut_ids as _cut_ids, ok as _ok, run_recipe as _run, tree as _tree
from speechssl.data.corpora.iemocap import FOUR_CLASS

ROOT = Path(__file__).resolve().parents[1]
VOXCELEB = ROOT / "egs" / "voxceleb" / "sv" / "run.sh"
IEMOCAP = ROOT / "egs" / "iemocap" / "er" / "run.sh"
SYSTEMS = ["fbank", "mfcc", "random", "pretrained"]


def _commands(run: subprocess.CompletedProcess, verb: str) -> list[list[str]]:
    """The printed commands ("+ ..." lines) that start with ``speechssl VERB``, as argument lists."""
    out = []
    for line in run.stdout.splitlines():
        if line.startswith("+ "):
            argv = shlex.split(line[2:])
            if argv[: 1 + len(verb.split())] == ["speechssl", *verb.split()]:
                out.append(argv)
    return out


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _overrides(argv: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))


# ---------------------------------------------------------------- expectations from the fake trees
def _vox_expected() -> dict[str, set[str]]:
    expected = {"train": set(), "test": set()}
    for rel in VOX1_FILES:
        split = "test" if VOX1_SPEAKERS[rel.split("/")[0]][1] == "test" else "train"
        expected[split].add(rel.replace("/", "-"))
    # VoxCeleb2, dev and test alike, goes to train
    expected["train"] |= {"-".join(rel.split("/")[-3:]) for rel in VOX2_FILES}
    return expected


def _vox_trials(known: set[str]) -> list[str]:
    """The trial list with cut ids; trials naming an utterance the corpus lacks are dropped."""
    out = []
    for line in VOX1_TRIALS:
        label, a, b = line.split()
        a, b = (p[: -len(".wav")].replace("/", "-") for p in (a, b))
        if a in known and b in known:
            out.append(f"{label} {a} {b}")
    return out


def _iemocap_expected() -> dict[str, set[str]]:
    return {
        f"session{session}": {utt for utts in dialogs.values() for utt, label, _ in utts if label in FOUR_CLASS}
        for session, dialogs in IEMOCAP_UTTS.items()
    }


# the fake IEMOCAP has sessions 1 and 2 only
IEMOCAP_SESSIONS = ["--sessions", "1 2", "--folds", "1 2"]


@pytest.fixture(scope="module")
def voxceleb_run(tmp_path_factory):
    """Stage 0 of the VoxCeleb recipe on the fake VoxCeleb1 + 2 trees, once: (data, exp, args, first run)."""
    tmp = tmp_path_factory.mktemp("vox")
    vox1, vox2 = make_voxceleb1(tmp / "corpus"), make_voxceleb2(tmp / "corpus")
    data, exp = tmp / "data", tmp / "exp"
    args = ["--corpus_dir", vox1, "--vox2_dir", vox2, "--data", data, "--exp", exp, "--nj", "1"]
    run = _ok(_run(VOXCELEB, "--stage", "0", "--stop_stage", "0", *args))
    return data, exp, args, run


@pytest.fixture(scope="module")
def iemocap_run(tmp_path_factory):
    """Stage 0 of the IEMOCAP recipe on the fake tree, once: (corpus, data, exp, args, first run)."""
    tmp = tmp_path_factory.mktemp("iemocap")
    corpus = make_iemocap(tmp / "corpus")
    data, exp = tmp / "data", tmp / "exp"
    args = ["--corpus_dir", corpus, "--data", data, "--exp", exp, "--nj", "1", *IEMOCAP_SESSIONS]
    run = _ok(_run(IEMOCAP, "--stage", "0", "--stop_stage", "0", *args))
    return corpus, data, exp, args, run


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_voxceleb_prepare(voxceleb_run):
    data, exp, args, run = voxceleb_run
    manifests = data / "voxceleb"
    assert "stage 0:" in run.stdout and "done before" not in run.stdout
    expected = _vox_expected()
    for split, ids in expected.items():
        assert set(_cut_ids(manifests / f"cuts_{split}.jsonl.gz")) == ids
    known = expected["train"] | expected["test"]
    trials = (manifests / "trials_veri_test2.txt").read_text().splitlines()
    assert trials == _vox_trials(known) and len(trials) == 2
    assert (manifests / ".done").exists()
    assert (exp / "run.command").read_text().strip().endswith("--nj 1")
    assert sorted(p.name for p in exp.iterdir()) == ["run.command"]  # no other stage ran

    # a second run skips the finished stage and rewrites nothing
    stamp = (manifests / "cuts_train.jsonl.gz").stat().st_mtime_ns
    again = _ok(_run(VOXCELEB, "--stage", "0", "--stop_stage", "0", *args))
    assert f"done before: {manifests}" in again.stdout and "speechssl prepare" not in again.stdout
    assert (manifests / "cuts_train.jsonl.gz").stat().st_mtime_ns == stamp

    # a trial list the manifests lack redoes stage 0, and one the corpus lacks is refused before it runs
    redo = _ok(_run(VOXCELEB, "--stage", "0", "--stop_stage", "0", *args, "--trials", "veri_test", "--dry-run", "true"))
    assert "done before" not in redo.stdout and len(_commands(redo, "prepare voxceleb")) == 1
    gone = _run(VOXCELEB, "--stage", "0", "--stop_stage", "0", *args, "--trials", "veri_test")
    assert gone.returncode == 2 and "veri_test.txt" in gone.stderr
    assert (manifests / "cuts_train.jsonl.gz").stat().st_mtime_ns == stamp


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_iemocap_prepare(iemocap_run):
    corpus, data, exp, args, run = iemocap_run
    manifests = data / "iemocap"
    assert "stage 0:" in run.stdout and "done before" not in run.stdout
    expected = _iemocap_expected()
    assert sorted(p.name for p in manifests.glob("cuts_*.jsonl.gz")) == sorted(f"cuts_{s}.jsonl.gz" for s in expected)
    for split, ids in expected.items():
        assert set(_cut_ids(manifests / f"cuts_{split}.jsonl.gz")) == ids
    assert (manifests / ".done").exists()
    assert sorted(p.name for p in exp.iterdir()) == ["run.command"]

    stamp = (manifests / "cuts_session1.jsonl.gz").stat().st_mtime_ns
    again = _ok(_run(IEMOCAP, "--stage", "0", "--stop_stage", "0", *args))
    assert f"done before: {manifests}" in again.stdout and "speechssl prepare" not in again.stdout
    assert (manifests / "cuts_session1.jsonl.gz").stat().st_mtime_ns == stamp

    # asking for sessions the manifests lack (the default: all five) redoes stage 0
    redo = _ok(_run(IEMOCAP, "--stage", "0", "--stop_stage", "0", "--corpus_dir", corpus, "--data", data,
                    "--exp", exp, "--dry-run", "true"))
    assert "done before" not in redo.stdout
    assert _option(_commands(redo, "prepare iemocap")[0], "--sessions") == "1"
    assert "--sessions 1 2 3 4 5" in redo.stdout


def test_voxceleb_dry_run(tmp_path):
    before = _tree(tmp_path) | _tree(VOXCELEB.parent)
    enc = tmp_path / "enc.safetensors"
    common = ["--dry-run", "true", "--corpus_dir", tmp_path / "nowhere", "--data", tmp_path / "data", "--exp",
              tmp_path / "exp"]
    run = _ok(_run(VOXCELEB, *common, "--encoder", enc))
    manifests = f"{tmp_path}/data/voxceleb"
    (prepare,) = _commands(run, "prepare voxceleb")
    assert prepare[3:5] == [f"{tmp_path}/nowhere", manifests] and "--voxceleb2-dir" not in prepare

    train = _commands(run, "sv train")
    assert [_option(c, "--exp") for c in train] == [f"{tmp_path}/exp/{s}" for s in SYSTEMS]
    for system, argv in zip(SYSTEMS, train):
        assert _option(argv, "--config").endswith("recipes/sv/xvector.yaml")
        assert _option(argv, "--corpus") == manifests
        over = _overrides(argv)
        assert {k: over.pop(k) for k in ("data.train_splits", "data.valid_split", "data.valid_trials", "data.label",
                                           "run.seed")} == {
            "data.train_splits": "[train]", "data.valid_split": "null", "data.valid_trials": "null",
            "data.label": "speaker", "run.seed": "0"}
        # what each system adds: its features, or the encoder (untrained for random)
        assert (over, _option(argv, "--encoder")) == {
            "fbank": ({"encoder.kind": "fbank"}, None),
            "mfcc": ({"encoder.kind": "mfcc"}, None),
            "random": ({"encoder.init": "random"}, str(enc)),
            "pretrained": ({}, str(enc)),
        }[system]

    evaluate = _commands(run, "sv evaluate")
    assert [c[3] for c in evaluate] == [f"{tmp_path}/exp/{s}" for s in SYSTEMS]
    for system, argv in zip(SYSTEMS, evaluate):
        assert _option(argv, "--trials") == f"{manifests}/trials_veri_test2.txt"
        assert _option(argv, "--split") == "test" and _option(argv, "--corpus") == manifests
        assert _option(argv, "--out") == f"{tmp_path}/exp/{system}/eval_veri_test2_asnorm"
        assert (_option(argv, "--asnorm"), _option(argv, "--cohort-split")) == ("true", "train")
    (results,) = _commands(run, "sv results")
    assert _option(results, "--out") == f"{tmp_path}/exp/RESULTS.tmp.md" and _option(results, "--title")
    assert results[-4:] == [f"{s}={tmp_path}/exp/{s}/eval_veri_test2_asnorm" for s in SYSTEMS]
    assert f"+ mv {tmp_path}/exp/RESULTS.tmp.md {tmp_path}/exp/RESULTS.md" in run.stdout

    # the baselines need no encoder; VoxCeleb2, adapters and no AS-norm
    run = _ok(_run(VOXCELEB, *common, "--systems", "fbank mfcc", "--stage", "1"))
    assert len(_commands(run, "sv train")) == 2 and "--encoder" not in run.stdout
    run = _ok(_run(VOXCELEB, *common, "--encoder", enc, "--systems", "adapters", "--asnorm", "false",
                   "--vox2_dir", tmp_path / "vox2", "--trials", "veri_test"))
    assert _option(_commands(run, "prepare voxceleb")[0], "--voxceleb2-dir") == f"{tmp_path}/vox2"
    (train,) = _commands(run, "sv train")
    assert _option(train, "--encoder") == str(enc) and _overrides(train)["encoder.mode"] == "adapters"
    (evaluate,) = _commands(run, "sv evaluate")
    assert _option(evaluate, "--asnorm") == "false" and "--cohort-split" not in evaluate
    assert _option(evaluate, "--trials") == f"{manifests}/trials_veri_test.txt"
    assert _option(evaluate, "--out") == f"{tmp_path}/exp/adapters/eval_veri_test"

    assert _tree(tmp_path) | _tree(VOXCELEB.parent) == before


def test_iemocap_dry_run(tmp_path):
    before = _tree(tmp_path) | _tree(IEMOCAP.parent)
    enc = tmp_path / "enc.safetensors"
    common = ["--dry-run", "true", "--corpus_dir", tmp_path / "nowhere", "--data", tmp_path / "data", "--exp",
              tmp_path / "exp"]
    run = _ok(_run(IEMOCAP, *common, "--encoder", enc))
    manifests = f"{tmp_path}/data/iemocap"
    assert len(_commands(run, "prepare iemocap")) == 1

    train = _commands(run, "er train")
    assert [_option(c, "--exp") for c in train] == [f"{tmp_path}/exp/{s}/fold{k}" for s in SYSTEMS for k in range(1, 6)]
    for argv in train:
        system, fold = argv[argv.index("--exp") + 1].split("/")[-2:]
        k = int(fold[len("fold"):])
        assert _option(argv, "--config").endswith("recipes/er/mlp.yaml") and _option(argv, "--corpus") == manifests
        over = _overrides(argv)
        # leave one session out: fold k trains on the other four sessions
        assert over.pop("data.train_splits") == "[" + ",".join(f"session{j}" for j in range(1, 6) if j != k) + "]"
        assert {k: over.pop(k) for k in ("data.valid_split", "data.label", "run.seed")} == {
            "data.valid_split": "null", "data.label": "emotion4", "run.seed": "0"}
        assert (over, _option(argv, "--encoder")) == {
            "fbank": ({"encoder.kind": "fbank"}, None),
            "mfcc": ({"encoder.kind": "mfcc"}, None),
            "random": ({"encoder.init": "random"}, str(enc)),
            "pretrained": ({}, str(enc)),
        }[system]

    evaluate = _commands(run, "er evaluate")
    assert len(evaluate) == 4 * 5
    for argv in evaluate:
        k = argv[3].rsplit("fold", 1)[1]
        assert _option(argv, "--split") == f"session{k}" and _option(argv, "--corpus") == manifests
        assert _option(argv, "--out") == f"{argv[3]}/eval_session{k}"
    (results,) = _commands(run, "er results")
    labelled = [a for a in results if "=" in a and not a.startswith("-")]
    # every fold of a system under the system's label: averaged into one row
    assert labelled == [f"{s}={tmp_path}/exp/{s}/fold{k}/eval_session{k}" for s in SYSTEMS for k in range(1, 6)]

    # fewer folds and sessions; the baselines need no encoder
    run = _ok(_run(IEMOCAP, *common, "--systems", "fbank", "--sessions", "1 2 3", "--folds", "2"))
    assert _option(_commands(run, "prepare iemocap")[0], "--sessions") == "1"
    assert "--sessions 1 2 3 " in run.stdout
    (train,) = _commands(run, "er train")
    assert _overrides(train)["data.train_splits"] == "[session1,session3]"
    (evaluate,) = _commands(run, "er evaluate")
    assert _option(evaluate, "--split") == "session2"
    (results,) = _commands(run, "er results")
    assert results[-1] == f"fbank={tmp_path}/exp/fbank/fold2/eval_session2"

    assert _tree(tmp_path) | _tree(IEMOCAP.parent) == before


@pytest.mark.parametrize("recipe", [VOXCELEB, IEMOCAP], ids=["voxceleb", "iemocap"])
def test_options(recipe, tmp_path):
    help_ = _ok(_run(recipe, "--help"))
    assert "\n  0  manifests" in help_.stdout and "--stop_stage (100)" in help_.stdout and '--encoder ("")' in help_.stdout
    assert '--systems ("fbank mfcc random pretrained")' in help_.stdout and "--seed (0)" in help_.stdout
    if recipe == VOXCELEB:
        assert "--trials (veri_test2)" in help_.stdout and "--asnorm (true)" in help_.stdout
        assert "--configs (../../../recipes/sv)" in help_.stdout and "--config (xvector)" in help_.stdout
    else:
        assert '--folds ("1 2 3 4 5")' in help_.stdout and '--sessions ("1 2 3 4 5")' in help_.stdout
        assert "--configs (../../../recipes/er)" in help_.stdout and "--config (mlp)" in help_.stdout
    where = ["--data", tmp_path / "data", "--exp", tmp_path / "exp"]

    bad = _run(recipe, "--corpus-dirr", "x")
    assert bad.returncode == 2 and "unknown option --corpus_dirr" in bad.stderr
    bad = _run(recipe, "stray")
    assert bad.returncode == 2 and "unexpected argument 'stray'" in bad.stderr
    bad = _run(recipe, "--systems", "fbank wav2vec", *where)
    assert bad.returncode == 2 and "unknown system 'wav2vec'" in bad.stderr
    assert "fbank mfcc random pretrained adapters" in bad.stderr
    bad = _run(recipe, "--seed", "x", *where)
    assert bad.returncode == 2 and "--seed must be a whole number" in bad.stderr
    if recipe == VOXCELEB:
        bad = _run(recipe, "--asnorm", "yes", *where)
        assert bad.returncode == 2 and "--asnorm must be true or false" in bad.stderr
    else:
        bad = _run(recipe, "--folds", "1 6", *where)
        assert bad.returncode == 2 and "--folds must be distinct session numbers" in bad.stderr
        bad = _run(recipe, "--sessions", "1 2", "--folds", "3", *where)
        assert bad.returncode == 2 and "session 3, which is not in --sessions" in bad.stderr

    # the required options, checked when a selected stage needs them (a dry run too)
    for dry in ("false", "true"):
        missing = _run(recipe, "--stage", "0", "--stop_stage", "0", "--dry_run", dry, *where)
        assert missing.returncode == 2 and "--corpus_dir is required for stage 0" in missing.stderr
        missing = _run(recipe, "--stage", "1", "--stop_stage", "1", "--dry_run", dry, *where)
        assert missing.returncode == 2 and "--encoder is required for stage 1 (training random pretrained)" in missing.stderr
    # ...only by the systems that use it; evaluation and results need neither
    _ok(_run(recipe, "--stage", "1", "--stop_stage", "1", "--dry_run", "true", "--systems", "fbank mfcc", *where))
    _ok(_run(recipe, "--stage", "2", "--dry_run", "true", *where))
    # a real run checks that the paths exist
    gone = _run(recipe, "--stage", "0", "--stop_stage", "0", "--corpus_dir", tmp_path / "nowhere", *where)
    assert gone.returncode == 2 and "--corpus_dir" in gone.stderr and "no such file or folder" in gone.stderr
    gone = _run(recipe, "--stage", "1", "--stop_stage", "1", "--encoder", tmp_path / "no.pt", *where)
    assert gone.returncode == 2 and "--encoder" in gone.stderr and "no such file or folder" in gone.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "exp").exists()
