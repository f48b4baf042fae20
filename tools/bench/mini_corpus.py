#!/usr/bin/env python
"""How fast is the mini corpus made, against espeak-ng alone rendering the same utterances?

Ours: ``make_mini_corpus`` (synthesis through libespeak-ng with phoneme events, resampling to
16 kHz, FLAC, alignments, manifests, trials). Peer: the ``espeak-ng`` command writing each
utterance's WAV (same voice, pitch, rate and volume; 22.05 kHz, no alignments), run with the same
number of parallel jobs. Both in this run, on this machine; the ratio is what holds.

    .venv/bin/python tools/bench/mini_corpus.py --hours 1.0 --num-jobs 2

Prints, last, one line per headline figure (``name: value``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def espeak_cli_render(plan, out: Path, num_jobs: int) -> float:
    from speechssl.data.mini.synth import STYLES, prosody_for

    def one(utt) -> None:
        p = prosody_for(utt.speaker, STYLES[utt.style])
        cmd = ["espeak-ng", "-v", utt.speaker.voice, "-p", str(p.pitch), "-s", str(p.rate), "-a", str(p.volume)]
        subprocess.run([*cmd, "-w", str(out / f"{utt.cut_id}.wav"), utt.text], check=True)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(num_jobs) as pool:
        list(pool.map(one, plan.utterances))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--num-jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from speechssl.data.mini import MiniCorpusConfig, make_mini_corpus, plan_corpus

    config = MiniCorpusConfig(hours=args.hours, seed=args.seed)
    plan = plan_corpus(config)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        stats = make_mini_corpus(tmp / "ours", config, num_jobs=args.num_jobs)
        ours = time.perf_counter() - t0
        (tmp / "peer").mkdir()
        peer = espeak_cli_render(plan, tmp / "peer", args.num_jobs)
        shutil.rmtree(tmp / "peer")
    audio_s = stats["all"].seconds
    print(f"utterances: {len(plan.utterances)}, audio: {audio_s / 3600:.3f} h, jobs: {args.num_jobs}")
    print(f"ours (make_mini_corpus): {ours:.1f} s; peer (espeak-ng -w per utterance): {peer:.1f} s")
    print(f"mini_corpus_build_seconds: {ours:.1f}")
    print(f"mini_corpus_audio_seconds_per_second: {audio_s / ours:.0f}")
    print(f"mini_corpus_speed_vs_espeak_cli: {peer / ours:.2f}x")


if __name__ == "__main__":
    main()
