#!/usr/bin/env python
"""Topic labels (HuBERTopic) for 100k utterances: time to fit and label, and topics recovered.

    .venv/bin/python tools/bench/topics.py                      # 100k documents, 2 jobs
    .venv/bin/python tools/bench/topics.py --docs 20000 --files # smaller; also through label files

The documents follow LDA's generative process, so the answer is known: ``--topics`` topic-unit
distributions ~ Dirichlet(``--beta``) over ``--units`` units; per utterance a duration uniform in
2-15 s at 50 frames/s, topic weights ~ Dirichlet(``--alpha``), then segments, each a topic drawn
from the weights, a unit from that topic and a duration in frames ~ Geometric(mean
``--mean-run``), so units repeat as k-means units of speech do. The planted topic of an utterance
is its largest weight.

Timed, with the library's defaults (except ``n_jobs``): ``fit_topic_model`` (sampling, its
document matrix, the online LDA), then labelling every utterance (document matrix of all, then
``transform``). ``--files`` also times the command-line path through a label folder on disk
(``fit_label_dir`` + ``label_topic_dir``: reading label files, writing the topic folder).

Peers, measured in the same run: scikit-learn's ``CountVectorizer`` over the space-joined unit
strings of 10k utterances (making the strings included) against our matrix of the same utterances
(the counts are checked equal), and, for the
recovered topics, the planted (true) model labelling the same 10k utterances with the same
scikit-learn E-step: its NMI is the ceiling a fitted model can reach on these data.
Wall time counts whatever else the machine runs; the CPU seconds of the process and its joblib
workers do not (divided by ``--jobs``, they bound the wall time on an idle machine from below).
Prints, last, one ``name: value`` line per headline figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def limit_threads(n: int) -> None:
    """BLAS/OpenMP threads of this process (set before numpy is imported)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def cpu_seconds() -> float:
    """CPU time of this process and its child processes (joblib's workers; Linux /proc): a figure
    that other load on a shared machine does not inflate, unlike wall time."""
    import resource
    from pathlib import Path

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + children.ru_utime + children.ru_stime  # + children that ended
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except OSError:
            continue
        if int(fields[1]) == os.getpid():  # ppid; then utime and stime in clock ticks
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def synthesise(num_docs: int, num_units: int, num_topics: int, alpha: float, beta: float, mean_run: float, seed: int):
    """``num_docs`` unit sequences (int64 arrays), their planted topic and the planted topic-unit
    distributions ``(num_topics, num_units)`` (vectorised; about 10 s for 100k utterances)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    topic_units = rng.dirichlet(np.full(num_units, beta), size=num_topics)  # (T, k)
    theta = rng.dirichlet(np.full(num_topics, alpha), size=num_docs)  # (D, T)
    frames = np.round(rng.uniform(2.0, 15.0, num_docs) * 50).astype(np.int64)
    segments = np.maximum(1, np.round(frames / mean_run)).astype(np.int64)  # (D,)
    counts = rng.multinomial(segments, theta)  # (D, T): segments of each topic in each document
    doc = np.repeat(np.arange(num_docs), segments)  # (S,) document of each segment
    topic = np.repeat(np.tile(np.arange(num_topics), num_docs), counts.reshape(-1))  # (S,)
    # shuffle the segments within each document (lexsort: by document, then by a random key)
    order = np.lexsort((rng.random(doc.size), doc))
    topic = topic[order]
    unit = np.empty(doc.size, dtype=np.int64)
    by_topic = np.argsort(topic, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(topic, minlength=num_topics))]
    for t in range(num_topics):
        idx = by_topic[bounds[t] : bounds[t + 1]]
        unit[idx] = rng.choice(num_units, size=idx.size, p=topic_units[t])
    run = rng.geometric(1.0 / mean_run, size=doc.size)  # frames per segment
    flat = np.repeat(unit, run)
    doc_frames = np.bincount(doc, weights=run, minlength=num_docs).astype(np.int64)
    docs = np.split(flat, np.cumsum(doc_frames)[:-1])
    return docs, theta.argmax(axis=1), topic_units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="utterances")
    parser.add_argument("--units", type=int, default=500, help="k: units per frame are 0..k-1")
    parser.add_argument(
        "--topics", type=int, default=None, help="planted and fitted topics (default: the library's num_topics)"
    )
    parser.add_argument("--alpha", type=float, default=0.02, help="Dirichlet prior of an utterance's topic weights")
    parser.add_argument("--beta", type=float, default=0.05, help="Dirichlet prior of a topic's unit distribution")
    parser.add_argument("--mean-run", type=float, default=2.5, help="mean frames a unit repeats")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (and BLAS threads)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--peer-docs", type=int, default=10_000, help="utterances the peers run on")
    parser.add_argument("--files", action="store_true", help="also time fit + label through a label folder on disk")
    args = parser.parse_args()
    limit_threads(args.jobs)

    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from speechssl.labels.topics import DocumentConfig, TopicConfig, TopicModel, fit_topic_model

    documents = DocumentConfig()
    config = TopicConfig(n_jobs=args.jobs)
    if args.topics is not None:
        config = TopicConfig(num_topics=args.topics, n_jobs=args.jobs)
    t0 = time.perf_counter()
    docs, planted, topic_units = synthesise(
        args.docs, args.units, config.num_topics, args.alpha, args.beta, args.mean_run, args.seed
    )
    frames = np.array([d.size for d in docs])
    print(
        f"data: {args.docs} utterances, {frames.sum() / 50 / 3600:.1f} h at 50 Hz "
        f"({frames.min() / 50:.1f}-{frames.max() / 50:.1f} s), k={args.units}, {config.num_topics} planted topics "
        f"(alpha={args.alpha}, beta={args.beta}, mean run {args.mean_run} frames); "
        f"made in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    print(f"documents: {documents}")
    print(f"config: {config}")

    # --- timed: fit + label with the library's defaults
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    model = fit_topic_model(docs, args.units, documents, config, progress=True)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    matrix = model.matrix(docs)
    t_matrix = time.perf_counter() - t0
    t0 = time.perf_counter()
    dist = model.transform_matrix(matrix, progress=True)
    t_transform = time.perf_counter() - t0
    labels = dist.argmax(axis=1)
    total = t_fit + t_matrix + t_transform
    cpu = cpu_seconds() - cpu0
    score = nmi(planted, labels)
    used = np.count_nonzero(np.bincount(labels, minlength=model.num_topics))
    per_doc = model.info["tokens"] / model.info["docs"]
    print(
        f"fit: {t_fit:.1f} s ({model.info['docs']} documents, {model.info['batches']} batches, "
        f"{per_doc:.0f} tokens/document after de-duplication); document matrix of all: {t_matrix:.1f} s; "
        f"transform: {t_transform:.1f} s; total {total:.1f} s ({cpu:.1f} CPU s in {args.jobs} processes); "
        f"{used}/{model.num_topics} topics used",
        flush=True,
    )

    # --- peers on the first --peer-docs utterances
    sub = docs[: args.peer_docs]
    t0 = time.perf_counter()
    ours = model.matrix(sub)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    strings = [
        " ".join(map(str, d[np.r_[True, d[1:] != d[:-1]]] if d.size else d)) for d in sub
    ]  # de-duplicated, as ours
    vectorizer = CountVectorizer(token_pattern=r"\S+", vocabulary=[str(u) for u in range(args.units)])
    peer = vectorizer.fit_transform(strings)
    t_peer = time.perf_counter() - t0
    assert (abs(peer - ours) > 0).nnz == 0, "CountVectorizer and our document matrix disagree"
    # (nearly) the planted topics as a fitted model: large Dirichlet parameters around topic_units
    oracle = TopicModel.from_components(
        topic_units * 1e6 + 1e-3, args.units, documents, config, doc_topic_prior=args.alpha
    )
    oracle_labels = oracle.transform_matrix(ours).argmax(axis=1)
    nmi_oracle = nmi(planted[: len(sub)], oracle_labels)
    nmi_sub = nmi(planted[: len(sub)], labels[: len(sub)])
    print(
        f"peers on {len(sub)} utterances: document matrix ours {t_ours:.2f} s, CountVectorizer {t_peer:.2f} s; "
        f"NMI vs planted: fitted {nmi_sub:.3f}, planted model {nmi_oracle:.3f}"
    )

    if args.files:
        import tempfile
        from pathlib import Path

        from speechssl.features.spec import FeatureSpec
        from speechssl.labels.files import write_labels
        from speechssl.labels.store import LabelDir, SplitInfo, write_label_dir_meta
        from speechssl.labels.topics import fit_label_dir, label_topic_dir

        with tempfile.TemporaryDirectory() as tmp:
            label_dir = Path(tmp) / "labels"
            ids = [f"utt{i:06d}" for i in range(len(docs))]
            write_labels(label_dir / "train.labels", zip(ids, docs))
            spec = FeatureSpec(kind="layer", dim=768, frame_rate=50.0, layer=6, encoder="bench")
            write_label_dir_meta(
                LabelDir(
                    label_dir,
                    args.units,
                    50.0,
                    spec,
                    "bench",
                    "bench",
                    {"train": SplitInfo("bench", len(docs), int(frames.sum()))},
                )
            )
            t0 = time.perf_counter()
            fitted = fit_label_dir(label_dir, "train", documents, config, progress=True)
            fitted.save(Path(tmp) / "model.safetensors")
            t_fit_files = time.perf_counter() - t0
            t0 = time.perf_counter()
            label_topic_dir(fitted, label_dir, Path(tmp) / "topics", progress=True)
            t_label_files = time.perf_counter() - t0
        print(
            f"through files: fit {t_fit_files:.1f} s, label {t_label_files:.1f} s, total {t_fit_files + t_label_files:.1f} s"
        )
        print(f"topics_seconds_files: {t_fit_files + t_label_files:.1f}")

    per = f"{args.docs // 1000}k" if args.docs % 1000 == 0 else str(args.docs)  # "100k" by default
    print(f"topics_cpu_seconds_{per}: {cpu:.1f}")
    print(f"topics_matrix_speedup_vs_countvectorizer: {t_peer / t_ours:.1f}x")
    print(f"topics_nmi_vs_planted_model: {nmi_sub / nmi_oracle:.3f}")
    print(f"topics_seconds_{per}: {total:.1f}")
    print(f"topics_nmi_vs_planted: {score:.3f}")


if __name__ == "__main__":
    sys.exit(main())
