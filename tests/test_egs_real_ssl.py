"""egs/librispeech/ssl/run.sh: its data stage runs for real on a fake LibriSpeech tree
(tests/corpus_fakes.py); the feature, k-means, label, topic, pretraining and report stages in dry runs;
and its options."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus_fakes import LIBRISPEECH_UTTS, make_librispeech
from recipe_runner import cut_ids as _cut_ids, ok as _ok, run_recipe as _run, tree as _tree

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "librispeech" / "ssl" / "run.sh"

# the fake LibriSpeech has dev-clean and test-clean only: they stand in for the train parts
PARTS = ["--train_parts", "dev-clean test-clean", "--valid_part", "dev-clean"]


def _commands(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("+ ")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Stage 0 on the fake tree, once: (corpus, data, exp, args, first run)."""
    tmp = tmp_path_factory.mktemp("ls_ssl")
    corpus = make_librispeech(tmp / "corpus")
    data, exp = tmp / "data", tmp / "exp"
    args = ["--corpus_dir", corpus.parent, "--data", data, "--exp", exp, "--nj", "1", *PARTS]
    run = _ok(_run(RECIPE, "--stage", "0", "--stop_stage", "0", *args))
    return corpus, data, exp, args, run


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_prepare(prepared):
    corpus, data, exp, args, run = prepared
    manifests = data / "librispeech"
    assert "stage 0:" in run.stdout and "done before" not in run.stdout
    # the valid part through the LibriSpeech preparation: the utterance ids
    assert sorted(_cut_ids(manifests / "cuts_dev-clean.jsonl.gz")) == sorted(LIBRISPEECH_UTTS["dev-clean"])
    # the train parts as one split 'train': <part>/<speaker>/<chapter>/<utterance>
    expected = [f"{part}/{'/'.join(utt.split('-')[:2])}/{utt}" for part, utts in LIBRISPEECH_UTTS.items() for utt in utts]
    assert sorted(_cut_ids(manifests / "train" / "cuts_train.jsonl.gz")) == sorted(expected)
    links = manifests / "train" / "audio"
    assert sorted(p.name for p in links.iterdir()) == ["dev-clean", "test-clean"]
    assert (links / "test-clean").is_symlink() and (links / "test-clean").resolve() == (corpus / "test-clean").resolve()
    assert (manifests / ".done").exists()
    assert (exp / "run.command").read_text().strip().endswith("--valid_part dev-clean")
    assert sorted(p.name for p in exp.iterdir()) == ["run.command"]  # no other stage ran

    # a second run skips the finished stage and rewrites nothing
    stamp = (manifests / "train" / "cuts_train.jsonl.gz").stat().st_mtime_ns
    again = _ok(_run(RECIPE, "--stage", "0", "--stop_stage", "0", *args))
    assert f"done before: {manifests}" in again.stdout
    assert (manifests / "train" / "cuts_train.jsonl.gz").stat().st_mtime_ns == stamp


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_prepare_redone_for_other_train_parts(prepared, tmp_path):
    """Other train parts than the manifests have redo stage 0 instead of calling it done."""
    corpus, data, _, _, _ = prepared
    run = _ok(_run(RECIPE, "--stage", "0", "--stop_stage", "0", "--corpus_dir", corpus, "--data", data,
                   "--exp", tmp_path / "exp", "--dry-run", "true", "--train_parts", "test-clean"))
    assert "done before" not in run.stdout
    assert sum(c.startswith("+ ln -s ") for c in _commands(run.stdout)) == 1
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("model", ["hubert", "hubertopic"])
def test_dry_run_prints_every_stage_and_creates_nothing(model, tmp_path):
    before = _tree(tmp_path) | _tree(RECIPE.parent)
    data, exp = tmp_path / "data", tmp_path / "exp"
    run = _ok(_run(RECIPE, "--dry-run", "true", "--corpus_dir", tmp_path / "nowhere", "--data", data, "--exp", exp,
                   "--model", model, "--ngpu", "4", "--nj", "3"))
    commands = _commands(run.stdout)
    assert [line.split(":")[0] for line in run.stdout.splitlines() if line.startswith("stage ")] == [
        f"stage {s}" for s in [0, 1, 2, 3, *([3] if model == "hubertopic" else []), 4, 5, 6, 7, *([7] if model == "hubertopic" else []), 8, 9]]

    def index(text: str, start: int = 0) -> int:
        return next(i for i, c in enumerate(commands) if i >= start and text in c)

    # stage 0: the valid part, and the three train parts linked and prepared as one split
    assert f"speechssl prepare librispeech {tmp_path}/nowhere {data}/librispeech --parts dev-clean" in commands[index("prepare librispeech")]
    links = [c for c in commands if c.startswith("+ ln -s ")]
    assert [c.split()[-1].rsplit("/", 1)[1] for c in links] == ["train-clean-100", "train-clean-360", "train-other-500"]
    assert f"speechssl prepare folder {data}/librispeech/train/audio {data}/librispeech/train --split train" in run.stdout

    # iteration 1: MFCC features (the valid part, then 3 shards of train), k-means 100, labels
    mfcc = [c for c in commands if "speechssl features --kind mfcc" in c]
    assert len(mfcc) == 4 and "cuts_dev-clean.jsonl.gz" in mfcc[0]
    assert [c.split("--shard ")[1] for c in mfcc[1:]] == ["1/3", "2/3", "3/3"]
    fits = [c for c in commands if "speechssl kmeans fit" in c]
    assert [c.split("--clusters ")[1].split()[0] for c in fits] == ["100", "500"]
    assert all("--split train" in c and "--percent 10" in c for c in fits)
    assert f"{exp}/feats/mfcc {exp}/kmeans/mfcc_km100/kmeans.safetensors" in fits[0]
    labels = [c for c in commands if "speechssl kmeans label" in c]
    assert len(labels) == 2 and labels[0].endswith(f"{exp}/feats/mfcc {exp}/labels/mfcc_km100")

    # pretraining: torchrun on --ngpu processes, 250k then 400k steps, the model's config, the
    # batch of 32 GPUs as 8 steps accumulated on each of 4
    train = [c for c in commands if "torchrun" in c]
    assert len(train) == 2
    for it, (c, steps) in enumerate(zip(train, ["250000", "400000"]), start=1):
        assert c.startswith("+ torchrun --standalone --nproc_per_node 4 -m speechssl.cli.pretrain ")
        assert f"--config ../../../recipes/pretrain/{model}_base.yaml" in c
        assert f"--exp {exp}/pretrain/{model}_iter{it} --max-steps {steps}" in c
        assert "data.train_split=train data.valid_split=dev-clean optim.accum_steps=8 run.seed=0" in c
    assert f"--labels {exp}/labels/mfcc_km100 " in train[0]
    assert f"--labels {exp}/labels/{model}_iter1_l6_km500 " in train[1]

    # iteration 2: layer 6 of iteration 1's encoder, one shard per GPU
    layer = [c for c in commands if "speechssl features --kind layer" in c]
    assert len(layer) == 1 + 4
    assert all(f"--encoder {exp}/pretrain/{model}_iter1/encoder.safetensors --layer 6" in c for c in layer)
    assert [c.split("--device ")[1] for c in layer[1:]] == [f"cuda:{g} --shard {g + 1}/4" for g in range(4)]
    assert f"{exp}/feats/{model}_iter1_l6 {exp}/kmeans/{model}_iter1_l6_km500/kmeans.safetensors" in fits[1]

    # the order: prepare, features, k-means, labels, pretrain, layer features, k-means, labels, pretrain, report
    order = [index("prepare librispeech"), index("prepare folder"), index("--kind mfcc"), index("kmeans fit"),
             index("kmeans label"), index("torchrun"), index("--kind layer"), index("--clusters 500"),
             index("kmeans label", index("--clusters 500")), index("torchrun", index("torchrun") + 1),
             index("speechssl label-quality")]
    assert order == sorted(order)
    assert f"label-quality {exp}/labels/mfcc_km100 {exp}/labels/{model}_iter1_l6_km500 --split dev-clean" in run.stdout

    # the topic models and the topic loss: hubertopic only
    topic_cmds = [c for c in commands if "speechssl topics" in c]
    if model == "hubertopic":
        assert len(topic_cmds) == 6  # fit, label, analyze per iteration
        assert f"--topics {exp}/topics/mfcc_km100_t100 topic.weight=0.5 --exp" in train[0]
        assert f"--topics {exp}/topics/hubertopic_iter1_l6_km500_t100 topic.weight=0.5 --exp" in train[1]
        assert index("topics fit") < index("torchrun")
    else:
        assert topic_cmds == [] and "--topics" not in run.stdout and "topic.weight" not in run.stdout

    assert _tree(tmp_path) | _tree(RECIPE.parent) == before


def test_help_and_options(tmp_path):
    help_ = _ok(_run(RECIPE, "--help"))
    assert "GPU-hours" in help_.stdout and "iteration 1 (250k steps)" in help_.stdout
    assert "iteration 2 (400k steps)" in help_.stdout and "Not measured here" in help_.stdout
    assert "531 GB float32" in help_.stdout and "\n  0  manifests" in help_.stdout
    assert "--model (hubert)" in help_.stdout and "--ngpu (8)" in help_.stdout and '--clusters ("100 500")' in help_.stdout
    assert '--corpus_dir ("")' in help_.stdout and "--stop_stage (100)" in help_.stdout
    where = ["--data", tmp_path / "data", "--exp", tmp_path / "exp"]

    for args, message in [
        (["--corpus-dirr", "x"], "unknown option --corpus_dirr"),
        (["stray"], "unexpected argument 'stray'"),
        (["--model", "wavlm"], "--model must be hubert or hubertopic, found 'wavlm'"),
        (["--ngpu", "two"], "--ngpu must be a whole number, found 'two'"),
        (["--ngpu", "0"], "--ngpu must be at least 1"),
        (["--ngpu", "3"], "--batch_gpus (32) must be a multiple of --ngpu (3)"),
        (["--dry_run", "yes"], "--dry_run must be true or false, found 'yes'"),
        (["--clusters", "100"], "need one value per iteration"),
        (["--feature_types", "hubert mfcc"], "iteration 1 has no encoder"),
        (["--feature_types", "mfcc fbank"], "unknown feature type 'fbank'"),
    ]:
        bad = _run(RECIPE, *args, *where)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)

    # --corpus_dir: required by stage 0 (in a dry run too), and it must exist in a real run
    for dry in ("false", "true"):
        missing = _run(RECIPE, "--stage", "0", "--stop_stage", "0", "--dry_run", dry, *where)
        assert missing.returncode == 2 and "--corpus_dir is required for stage 0" in missing.stderr
    gone = _run(RECIPE, "--stage", "0", "--stop_stage", "0", "--corpus_dir", tmp_path / "nowhere", *where)
    assert gone.returncode == 2 and "--corpus_dir" in gone.stderr and "no such file or folder" in gone.stderr
    # a missing train part is named before anything runs
    corpus = make_librispeech(tmp_path / "corpus")
    gone = _run(RECIPE, "--stage", "0", "--stop_stage", "0", "--corpus_dir", corpus, *where)
    assert gone.returncode == 2 and f"no LibriSpeech part {corpus}/train-clean-100" in gone.stderr
    # the later stages do not need it
    _ok(_run(RECIPE, "--stage", "1", "--dry_run", "true", *where))
    assert not (tmp_path / "data").exists() and not (tmp_path / "exp").exists()
