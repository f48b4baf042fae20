"""egs/librispeech/asr/run.sh and egs/commonvoice/adapters/run.sh: their data stages run for real on
fake corpus trees (tests/corpus_fakes.py); their training, decoding and results stages in dry runs,
and their options."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from corpus_fakes import CV_ROWS, LIBRISPEECH_UTTS, make_commonvoice, make_librispeech
from recipe_runner import cut_ids as _cut_ids, ok as _ok, run_recipe as _run, tree as _tree

ROOT = Path(__file__).resolve().parents[1]
LIBRISPEECH = ROOT / "egs" / "librispeech" / "asr" / "run.sh"
COMMONVOICE = ROOT / "egs" / "commonvoice" / "adapters" / "run.sh"


# the fake LibriSpeech has dev-clean and test-clean only
LS_PARTS = ["--train_part", "dev-clean", "--valid_part", "dev-clean", "--test_parts", "test-clean"]


@pytest.fixture(scope="module")
def librispeech_run(tmp_path_factory):
    """Stage 0 of the LibriSpeech recipe on the fake tree, once: (corpus, data, exp, first run)."""
    tmp = tmp_path_factory.mktemp("ls")
    corpus = make_librispeech(tmp / "corpus")
    data, exp = tmp / "data", tmp / "exp"
    args = ["--corpus_dir", corpus, "--data", data, "--exp", exp, "--nj", "1", *LS_PARTS]
    run = _ok(_run(LIBRISPEECH, "--stage", "0", "--stop_stage", "0", *args))
    return corpus, data, exp, args, run


@pytest.fixture(scope="module")
def commonvoice_run(tmp_path_factory):
    """Stage 0 of the Common Voice recipe on the fake tree, once: (corpus, data, exp, args, first run)."""
    tmp = tmp_path_factory.mktemp("cv")
    corpus = make_commonvoice(tmp / "corpus")
    data, exp = tmp / "data", tmp / "exp"
    args = ["--corpus_dir", corpus, "--data", data, "--exp", exp, "--nj", "1"]
    run = _ok(_run(COMMONVOICE, "--stage", "0", "--stop_stage", "0", *args))
    return corpus, data, exp, args, run


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_librispeech_prepare(librispeech_run):
    _, data, exp, args, run = librispeech_run
    manifests = data / "librispeech"
    assert "stage 0:" in run.stdout and "done before" not in run.stdout
    for part in ("dev-clean", "test-clean"):
        assert sorted(_cut_ids(manifests / f"cuts_{part}.jsonl.gz")) == sorted(LIBRISPEECH_UTTS[part])
    assert (manifests / ".done").exists()
    assert (exp / "run.command").read_text().strip().endswith("--test_parts test-clean")
    # no other stage ran
    assert sorted(p.name for p in exp.iterdir()) == ["run.command"]

    # a second run skips the finished stage and rewrites nothing
    stamp = (manifests / "cuts_dev-clean.jsonl.gz").stat().st_mtime_ns
    again = _ok(_run(LIBRISPEECH, "--stage", "0", "--stop_stage", "0", *args))
    assert f"done before: {manifests}" in again.stdout
    assert (manifests / "cuts_dev-clean.jsonl.gz").stat().st_mtime_ns == stamp


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_librispeech_prepare_redone_for_a_new_part(librispeech_run, tmp_path):
    """Asking for a part the manifests lack redoes stage 0 instead of calling it done."""
    corpus, data, _, _, _ = librispeech_run
    run = _run(LIBRISPEECH, "--stage", "0", "--stop_stage", "0", "--corpus_dir", corpus, "--data", data,
               "--exp", tmp_path / "exp", "--dry-run", "true", *LS_PARTS[:4], "--test_parts", "test-clean test-other")
    _ok(run)
    assert "done before" not in run.stdout
    assert "--parts dev-clean test-clean test-other" in run.stdout


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_commonvoice_prepare(commonvoice_run):
    _, data, exp, args, run = commonvoice_run
    manifests = data / "commonvoice_cy"
    assert "stage 0:" in run.stdout and "done before" not in run.stdout
    for split, rows in CV_ROWS.items():
        assert sorted(_cut_ids(manifests / f"cuts_{split}.jsonl.gz")) == sorted(r[0][: -len(".mp3")] for r in rows)
    assert (manifests / ".done").exists()
    assert not (data / "commonvoice_cy_60min").exists()  # stage 1 was not selected

    again = _ok(_run(COMMONVOICE, "--stage", "0", "--stop_stage", "0", *args))
    assert f"done before: {manifests}" in again.stdout


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
@pytest.mark.skipif(importlib.util.find_spec("speechssl.cli.subset") is None, reason="speechssl subset is not there yet")
def test_commonvoice_subset(commonvoice_run):
    _, data, _, args, _ = commonvoice_run
    manifests = data / "commonvoice_cy"
    # 0.0115 minutes = 0.69 s: of the train clips (0.6 s and 0.8 s) only the shorter fits
    subset_args = [*args, "--budget_minutes", "0.0115"]
    run = _ok(_run(COMMONVOICE, "--stage", "1", "--stop_stage", "1", *subset_args))
    out = data / "commonvoice_cy_0.0115min"
    assert f"-> {out}" in run.stdout
    assert _cut_ids(out / "cuts_train.jsonl.gz") == ["common_voice_cy_100"]
    for split in ("dev", "test"):  # kept whole
        assert _cut_ids(out / f"cuts_{split}.jsonl.gz") == _cut_ids(manifests / f"cuts_{split}.jsonl.gz")
    assert (out / "subset.json").exists() and (out / ".done").exists()

    again = _ok(_run(COMMONVOICE, "--stage", "0", "--stop_stage", "1", *subset_args))
    assert again.stdout.count("done before:") == 2, again.stdout

    # the default budget (60 minutes) keeps every train clip; no budget makes no subset
    run = _ok(_run(COMMONVOICE, "--stage", "1", "--stop_stage", "1", *args))
    assert len(_cut_ids(data / "commonvoice_cy_60min" / "cuts_train.jsonl.gz")) == len(CV_ROWS["train"])
    run = _ok(_run(COMMONVOICE, "--stage", "1", "--stop_stage", "1", *args, "--budget_minutes", "0"))
    assert "no --budget_minutes" in run.stdout


def test_dry_runs_print_every_stage_and_create_nothing(tmp_path):
    before = _tree(tmp_path) | _tree(LIBRISPEECH.parent) | _tree(COMMONVOICE.parent)
    common = ["--dry-run", "true", "--corpus_dir", tmp_path / "nowhere", "--encoder", tmp_path / "enc.safetensors",
              "--data", tmp_path / "data", "--exp", tmp_path / "exp"]

    ls = _ok(_run(LIBRISPEECH, *common))
    commands = [line for line in ls.stdout.splitlines() if line.startswith("+ ")]
    assert sum("speechssl prepare librispeech" in c for c in commands) == 1
    assert "--parts train-clean-100 dev-clean test-clean test-other" in ls.stdout
    train = [c for c in commands if "speechssl asr train" in c]
    assert len(train) == 2 and "recipes/asr/frozen.yaml" in train[0] and "recipes/asr/finetune.yaml" in train[1]
    assert all("data.train_split=train-clean-100 data.valid_split=dev-clean" in c for c in train)
    assert sum("speechssl asr decode" in c for c in commands) == 2 * 3  # modes x test parts
    assert f"--out {tmp_path}/exp/frozen/decode_test-other --beam 1" in ls.stdout
    results = [c for c in commands if "speechssl asr results" in c]
    assert len(results) == 1 and f"finetune/test-clean={tmp_path}/exp/finetune/decode_test-clean" in results[0]

    cv = _ok(_run(COMMONVOICE, *common))
    commands = [line for line in cv.stdout.splitlines() if line.startswith("+ ")]
    assert any("speechssl prepare commonvoice" in c and "--languages cy --splits train dev test" in c for c in commands)
    assert any("speechssl subset" in c and "--max-minutes 60 --budget-splits train" in c for c in commands)
    train = [c for c in commands if "speechssl asr train" in c]
    assert [c.split("--config ")[1].split()[0].rsplit("/", 1)[1] for c in train] == [
        "frozen.yaml", "adapters.yaml", "lora.yaml", "finetune.yaml"]
    assert all(f"--corpus {tmp_path}/data/commonvoice_cy_60min" in c for c in train)
    assert sum("speechssl asr decode" in c for c in commands) == 4
    assert sum("speechssl asr results" in c for c in commands) == 1
    assert f"{tmp_path}/exp/cy_60min/RESULTS" in cv.stdout

    # no budget: no subset, training on the prepared manifests
    cv = _ok(_run(COMMONVOICE, *common, "--budget_minutes", ""))
    assert "speechssl subset" not in cv.stdout and f"--corpus {tmp_path}/data/commonvoice_cy " in cv.stdout

    assert _tree(tmp_path) | _tree(LIBRISPEECH.parent) | _tree(COMMONVOICE.parent) == before


@pytest.mark.parametrize("recipe", [LIBRISPEECH, COMMONVOICE], ids=["librispeech", "commonvoice"])
def test_options(recipe, tmp_path):
    help_ = _ok(_run(recipe, "--help"))
    assert "\n  0  manifests" in help_.stdout and "--stop_stage (100)" in help_.stdout and '--encoder ("")' in help_.stdout
    if recipe == LIBRISPEECH:
        assert '--modes ("frozen finetune")' in help_.stdout and "--train_part (train-clean-100)" in help_.stdout
        assert '--test_parts ("dev-clean test-clean test-other")' in help_.stdout
    else:
        assert '--modes ("frozen adapters lora finetune")' in help_.stdout and "--budget_minutes (60)" in help_.stdout
        assert "--lang (cy)" in help_.stdout
    train_stage = "1" if recipe == LIBRISPEECH else "2"
    where = ["--data", tmp_path / "data", "--exp", tmp_path / "exp"]

    bad = _run(recipe, "--corpus-dirr", "x")
    assert bad.returncode == 2 and "unknown option --corpus_dirr" in bad.stderr
    bad = _run(recipe, "stray")
    assert bad.returncode == 2 and "unexpected argument 'stray'" in bad.stderr

    # the required options, checked when a selected stage needs them (a dry run too)
    for dry in ("false", "true"):
        missing = _run(recipe, "--stage", "0", "--stop_stage", "0", "--dry_run", dry, *where)
        assert missing.returncode == 2 and "--corpus_dir is required for stage 0" in missing.stderr
        missing = _run(recipe, "--stage", train_stage, "--stop_stage", train_stage, "--dry_run", dry, *where)
        assert missing.returncode == 2 and f"--encoder is required for stage {train_stage}" in missing.stderr
    # decoding and results need neither
    _ok(_run(recipe, "--stage", str(int(train_stage) + 1), "--dry_run", "true", *where))
    # a real run checks that the paths exist
    gone = _run(recipe, "--stage", "0", "--stop_stage", "0", "--corpus_dir", tmp_path / "nowhere", *where)
    assert gone.returncode == 2 and "--corpus_dir" in gone.stderr and "no such file or folder" in gone.stderr
    gone = _run(recipe, "--stage", train_stage, "--stop_stage", train_stage, "--encoder", tmp_path / "no.pt", *where)
    assert gone.returncode == 2 and "--encoder" in gone.stderr and "no such file or folder" in gone.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "exp").exists()
