"""``speechssl <verb> ...``: dispatch to the verb modules.

Verb modules are imported only when their verb runs, so ``speechssl --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

from speechssl import __version__

# verb -> (module under speechssl.cli, one-line summary shown by `speechssl --help`)
VERBS: dict[str, tuple[str, str]] = {
    "make-mini-corpus": ("make_mini_corpus", "synthesise the mini corpus with espeak-ng (audio, transcripts, alignments, splits, trials)"),
    "prepare": ("prepare", "make lhotse manifests for a corpus (LibriSpeech, LibriLight, VoxCeleb, CommonVoice, FLEURS, IEMOCAP, a folder)"),
    "subset": ("subset", "write a subset of a corpus's manifests: by language, speaker, split, or a budget of minutes"),
    "stats": ("stats", "print statistics of cut manifests: hours, speakers, languages, styles, phones"),
    "validate": ("validate", "decode every recording of a manifest; report, list and drop unreadable ones"),
    "fairseq-export": ("fairseq_export", "write a manifest (and labels) as fairseq .tsv (and .km) files"),
    "fairseq-import": ("fairseq_import", "read fairseq .tsv (and .km) files into a manifest (and a label file)"),
    "convert": ("convert", "convert encoder checkpoints: Hugging Face, fairseq, torchaudio <-> speechssl, to Hugging Face"),
    "features": ("features", "compute MFCC or encoder-layer features of a manifest and write them to disk (shardable)"),
    "kmeans": ("kmeans", "k-means on frame features: 'fit' a model (faiss, streamed sample), 'label' every split"),
    "label-quality": ("label_quality", "phone purity, cluster purity, PNMI and unit usage of frame labels"),
    "pretrain": ("pretrain", "pretrain an encoder by masked unit prediction (HuBERT/WavLM, HuBERTopic topic loss; DDP via torchrun)"),
    "tokens": ("tokens", "discrete speech tokens: 'extract' units from audio (encoder layer + k-means), unit BPE 'bpe-train' / 'bpe-encode'"),
    "asr": ("asr", "CTC speech recognition on an encoder: 'train' (frozen + head, adapters/LoRA, fine-tuning), 'decode', 'results'"),
    "sv": ("sv", "speaker verification: 'train' an x-vector head (AAM-softmax) on an encoder or MFCC/fbank, 'evaluate' trials (EER, minDCF, DET), 'results'"),
    "er": ("er", "emotion recognition: 'train' a pooling + MLP classifier (class-balanced), 'evaluate' a split (WA, UA, F1, confusion), 'results'"),
    "topics": ("topics", "HuBERTopic topic labels: 'fit' an LDA over unit documents, 'label' utterances, 'analyze'"),
    "report": ("report", "one Markdown report with PNG figures of a whole run: curves, label quality, topics, tokens, downstream tasks"),
    "doctor": ("doctor", "check the installation (Python, torch, torchaudio, CUDA, faiss, espeak-ng, threads): run it first, paste it into bug reports"),
}


def _usage() -> str:
    width = max(len(v) for v in VERBS)
    lines = [
        f"usage: speechssl <verb> [options]      (speechssl {__version__})",
        "",
        "verbs:",
        *(f"  {verb:<{width}}  {summary}" for verb, (_, summary) in VERBS.items()),
        "",
        "Run 'speechssl <verb> --help' for a verb's options and an example.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        import difflib

        close = difflib.get_close_matches(verb, VERBS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"speechssl: unknown verb '{verb}'.{hint} Valid verbs: {', '.join(VERBS)}", file=sys.stderr)
        return 2
    from speechssl.deps import DependencyError, import_torch, is_dependency_failure, missing_module_message

    # a broken or partial install is one line naming what is wrong and the fix, never a traceback
    # from inside a dependency (doctor runs in any install: it reports instead)
    try:
        if verb != "doctor":
            import_torch()
        module = importlib.import_module(f"speechssl.cli.{VERBS[verb][0]}")
        return int(module.main(rest) or 0)
    except DependencyError as e:
        print(f"speechssl {verb}: error: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        if not is_dependency_failure(e):
            raise
        print(f"speechssl {verb}: error: {missing_module_message(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
