"""Output folders are owned: a second run into a folder in use is refused with the holder named,
for every verb that writes a folder; a killed run does not leave the folder stuck; workers of one
sharded run share it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speechssl.io import FolderInUseError, own_folder

SPEECHSSL = [sys.executable, "-m", "speechssl.cli.main"]


def test_second_holder_is_refused_and_named(tmp_path):
    with own_folder(tmp_path / "out", "tokens extract"):
        with pytest.raises(FolderInUseError) as e:
            with own_folder(tmp_path / "out", "features"):
                pass
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'out'}: in use by speechssl tokens extract (pid {os.getpid()} on {socket.gethostname()}, since ")
    with own_folder(tmp_path / "out", "features"):  # released: free again
        pass


def test_shards_share_an_unsharded_run_excludes_them(tmp_path):
    out = tmp_path / "out"
    with own_folder(out, "features", (1, 2)), own_folder(out, "features", (2, 2)):
        with pytest.raises(FolderInUseError, match=r"shard 1/2\): in use by speechssl features \(pid \d+ on .*, shard 1/2, since"):
            with own_folder(out, "features", (1, 2)):
                pass
        with pytest.raises(FolderInUseError) as e:
            with own_folder(out, "features"):
                pass
        assert "shard 1/2" in str(e.value) and "shard 2/2" in str(e.value)
    with own_folder(out, "features"):
        with pytest.raises(FolderInUseError, match=r"in use by speechssl features \(pid"):
            with own_folder(out, "features", (2, 2)):
                pass


_HOLD = """
import sys, time
from speechssl.io import own_folder
with own_folder(sys.argv[1], "pretrain"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_run_does_not_leave_the_folder_stuck(tmp_path):
    out = tmp_path / "exp"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUseError, match=rf"in use by speechssl pretrain \(pid {proc.pid} "):
            with own_folder(out, "pretrain"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with own_folder(out, "pretrain"):  # the kernel released the lock with the process
        pass


def test_two_concurrent_cli_runs(mini_corpus, tmp_path):
    """A double launch into one folder: the second is refused at once, naming the first, which
    finishes with complete outputs."""
    out = tmp_path / "feats"
    argv = [*SPEECHSSL, "features", str(mini_corpus / "cuts_dev.jsonl.gz"), str(out), "--kind", "mfcc", "-q"]
    first = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    lock = out / ".speechssl.lock"
    deadline = time.time() + 120
    while not (lock.is_file() and lock.read_text().strip()) and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # held mid-run, however fast this machine is
    try:
        assert first.poll() is None, "the first run ended before the second started"
        second = subprocess.run(argv, capture_output=True, text=True)
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 1
    err = second.stderr.strip()
    assert err.startswith(f"speechssl features: error: {out}: in use by speechssl features (pid {first.pid} on {socket.gethostname()}, since "), err
    assert len(err.splitlines()) == 1
    assert (out / "dev" / "shard-1-of-1.json").is_file()
    assert lock.read_text() == ""  # released: it names no holder


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    from speechssl.checkpoint import save_encoder
    from speechssl.models import build_encoder, preset

    path = tmp_path_factory.mktemp("enc") / "enc.safetensors"
    save_encoder(build_encoder(preset("tiny_hubert")), path)
    return path


def _verbs(tmp: Path, data: Path, encoder: Path) -> dict[str, tuple[list[str], Path]]:
    """Each folder-writing verb: (argv, the folder it writes)."""
    dev = str(data / "cuts_dev.jsonl.gz")
    return {
        "features": (["features", dev, str(tmp / "o"), "--kind", "mfcc"], tmp / "o"),
        "features-shard": (["features", dev, str(tmp / "o"), "--kind", "mfcc", "--shard", "1/2"], tmp / "o"),
        "kmeans label": (["kmeans", "label", dev, str(tmp / "o"), "--model", str(tmp / "km.safetensors")], tmp / "o"),
        "topics label": (["topics", "label", "--model", str(tmp / "t.safetensors"), str(tmp / "labels"), str(tmp / "o")], tmp / "o"),
        "tokens extract": (["tokens", "extract", dev, str(tmp / "o"), "--encoder", str(encoder), "--kmeans", str(tmp / "km.safetensors")], tmp / "o"),
        "pretrain": (["pretrain", "--exp", str(tmp / "o")], tmp / "o"),
        "asr train": (["asr", "train", "--exp", str(tmp / "o")], tmp / "o"),
        "asr decode": (["asr", "decode", str(tmp / "exp"), "--out", str(tmp / "o")], tmp / "o"),
        "sv train": (["sv", "train", "--exp", str(tmp / "o")], tmp / "o"),
        "sv evaluate": (["sv", "evaluate", str(tmp / "exp"), "--trials", str(tmp / "trials"), "--out", str(tmp / "o")], tmp / "o"),
        "er train": (["er", "train", "--exp", str(tmp / "o")], tmp / "o"),
        "er evaluate": (["er", "evaluate", str(tmp / "exp"), "--out", str(tmp / "o")], tmp / "o"),
        "prepare": (["prepare", "folder", str(data / "wavs"), str(tmp / "o")], tmp / "o"),
        "subset": (["subset", str(data), str(tmp / "o"), "--languages", "en"], tmp / "o"),
        "make-mini-corpus": (["make-mini-corpus", str(tmp / "o"), "--tiny"], tmp / "o"),
        "report": (["report", "--out", str(tmp / "o")], tmp / "o"),
        "fairseq-export": (["fairseq-export", dev, str(tmp / "o")], tmp / "o"),
        "convert": (["convert", "--from", "speechssl", str(encoder), str(tmp / "o"), "--overwrite"], tmp / "o"),
    }


VERBS = list(_verbs(Path("/x"), Path("/x"), Path("/x")))


@pytest.mark.parametrize("verb", VERBS)
def test_every_folder_writing_verb_is_refused(verb, mini_corpus, tiny_encoder, tmp_path, capsys):
    """With the folder held, each verb stops at once with one line naming the holder, and writes nothing."""
    from speechssl.cli.main import main

    argv, folder = _verbs(tmp_path, mini_corpus, tiny_encoder)[verb]
    with own_folder(folder, "holder-verb"):
        before = sorted(p.name for p in folder.iterdir())
        rc = main(argv)
        after = sorted(p.name for p in folder.iterdir())
    err = capsys.readouterr().err.strip()
    assert rc == 1, err
    assert f"{folder}: in use by speechssl holder-verb (pid {os.getpid()} on " in err, err
    assert len(err.splitlines()) == 1, err
    assert before == after
