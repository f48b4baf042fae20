"""Padded batches from cuts; bad audio in a batch is reported and skipped, or fails when strict."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording

from speechssl.cli import validate
from speechssl.data.audio import AudioError, load_audio
from speechssl.data.dataset import AudioDataset
from speechssl.data.manifest import load_cuts, save_cuts
from speechssl.data.sampler import SamplerConfig, make_sampler

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases


@pytest.fixture
def cuts_with_a_bad_file(tmp_path) -> CutSet:
    rng = np.random.default_rng(0)
    recs = []
    for i, (secs, rate, ch) in enumerate([(1.0, 16000, 1), (0.5, 8000, 2), (0.8, 22050, 1)]):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, rng.standard_normal((int(secs * rate), ch)).astype(np.float32) * 0.1, rate)
        recs.append(Recording.from_file(path))
    # a file that was fine when the manifest was made and was corrupted afterwards
    bad = tmp_path / "u3.wav"
    sf.write(bad, np.zeros(16000, dtype=np.float32), 16000)
    recs.append(Recording.from_file(bad))
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    return CutSet.from_cuts(r.to_cut() for r in recs)


def test_padded_batch_matches_items(cuts_with_a_bad_file):
    batch = AudioDataset()[cuts_with_a_bad_file]
    assert batch.cut_ids == ["u0", "u1", "u2"]
    assert [cid for cid, _ in batch.skipped] == ["u3"] and "u3.wav" in batch.skipped[0][1]
    assert batch.wavs.shape == (3, 16000) and batch.lengths.tolist() == [16000, 8000, 12800]
    for i, cut in enumerate(list(cuts_with_a_bad_file)[:3]):
        n = int(batch.lengths[i])
        alone = load_audio(cut.recording.sources[0].source)
        torch.testing.assert_close(batch.wavs[i, :n], torch.from_numpy(alone))
        assert torch.all(batch.wavs[i, n:] == 0)


def test_strict_raises_with_the_file(cuts_with_a_bad_file):
    with pytest.raises(AudioError, match="u3.wav"):
        AudioDataset(strict=True)[cuts_with_a_bad_file]


def test_dataloader_with_sampler(cuts_with_a_bad_file):
    sampler = make_sampler(cuts_with_a_bad_file, SamplerConfig(max_duration=2.0, shuffle=False))
    loader = torch.utils.data.DataLoader(AudioDataset(), sampler=sampler, batch_size=None)
    ids = [i for b in loader for i in b.cut_ids]
    skipped = [s for b in loader for s, _ in b.skipped]
    assert sorted(ids) == ["u0", "u1", "u2"] and skipped == ["u3"]


def test_validate_cli(cuts_with_a_bad_file, tmp_path, capsys):
    manifest = save_cuts(cuts_with_a_bad_file, tmp_path / "cuts_train.jsonl.gz")
    out = tmp_path / "clean" / "cuts_train.jsonl.gz"
    assert validate.main([str(manifest), "--out", str(out), "--num-jobs", "2"]) == 0
    assert list(load_cuts(out).ids) == ["u0", "u1", "u2"]
    lines = (tmp_path / "clean" / "cuts_train.skipped.tsv").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("u3\t") and "u3.wav" in lines[0]
    assert "3 of 4 cuts are usable" in capsys.readouterr().out
    # strict: fails, names the file, writes no manifest
    out2 = tmp_path / "strict" / "cuts_train.jsonl.gz"
    assert validate.main([str(manifest), "--out", str(out2), "--strict"]) == 1
    assert "u3.wav" in capsys.readouterr().err
    assert not out2.exists()
