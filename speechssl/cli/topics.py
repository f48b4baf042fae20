"""``speechssl topics fit|label|analyze``: HuBERTopic topic labels (an LDA over unit documents).

The work is done by :mod:`speechssl.labels.topics`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechssl.cli.common import add_subcommand, add_verbosity, make_parser, non_negative_int, own_output, positive_float, positive_int, setup_logging, user_errors

EXAMPLES = """speechssl topics fit --topics 4 exp/labels/mfcc_km100 exp/topics/mfcc_km100_t4.safetensors
speechssl topics label --model exp/topics/mfcc_km100_t4.safetensors exp/labels/mfcc_km100 exp/topics/mfcc_km100_t4
speechssl topics analyze exp/topics/mfcc_km100_t4"""



def get_parser() -> argparse.ArgumentParser:
    from speechssl.labels.topics import AUTO_MAX_PASSES, AUTO_PASS_DOCS, DocumentConfig, TopicConfig

    doc, cfg = DocumentConfig(), TopicConfig()
    p = make_parser(
        "topics",
        "HuBERTopic topic labels. 'fit' an LDA (scikit-learn, online variational Bayes) whose documents "
        "are the unit sequences of a label folder's utterances; 'label' gives every cut of a label "
        "folder its topic (the most probable one) and topic distribution, written to a topic folder "
        "(<split>.topics, <split>.topic_dist.npz, topics.json last); 'analyze' reports topic usage and "
        "how topic labels relate to the speaker, gender, language and style of the cuts (NMI, purity).",
        EXAMPLES,
    )
    sub = p.add_subparsers(dest="command", metavar="{fit,label,analyze}", required=True)

    fit = add_subcommand(
        sub,
        "fit",
        "fit a topic model on a split of a label folder",
        "Fit an LDA on the unit documents of one split of a label folder and save it as MODEL_OUT "
        "(safetensors). Documents are de-duplicated unit sequences (consecutive repeats collapsed) "
        "unless --no-dedup; --ngram 2 adds unit bigrams. Deterministic under --seed for a given "
        "--num-jobs.",
        EXAMPLES.splitlines()[0],
    )
    fit.add_argument("label_dir", type=Path, metavar="LABEL_DIR", help="label folder (with labels.json)")
    fit.add_argument("model_out", type=Path, metavar="MODEL_OUT", help="topic model file to write (.safetensors)")
    fit.add_argument("--split", default="train", help="split whose utterances the model is fitted on (default: train)")
    fit.add_argument(
        "--topics",
        type=positive_int,
        default=cfg.num_topics,
        metavar="T",
        help=f"number of topics (default: {cfg.num_topics})",
    )
    fit.add_argument(
        "--no-dedup",
        dest="dedup",
        action="store_false",
        help="count every frame's unit (default: collapse consecutive repeats)",
    )
    fit.add_argument(
        "--ngram",
        type=positive_int,
        default=doc.ngram,
        metavar="N",
        help=f"features are unit n-grams up to N, 1-4 (default: {doc.ngram})",
    )
    fit.add_argument(
        "--min-count",
        type=positive_int,
        default=doc.min_count,
        metavar="C",
        help=f"keep an n-gram (N >= 2) seen at least C times (default: {doc.min_count})",
    )
    fit.add_argument(
        "--passes",
        type=positive_int,
        metavar="P",
        help=f"passes over the fitting documents (default: enough to visit {AUTO_PASS_DOCS} documents, at most {AUTO_MAX_PASSES})",
    )
    fit.add_argument(
        "--batch-size",
        type=positive_int,
        default=cfg.batch_size,
        metavar="B",
        help=f"documents per online update (default: {cfg.batch_size})",
    )
    fit.add_argument(
        "--max-fit-docs",
        type=non_negative_int,
        default=cfg.max_fit_docs,
        metavar="N",
        help=f"fit on a seeded sample of at most N documents, 0 for all (default: {cfg.max_fit_docs}); every document is labelled",
    )
    fit.add_argument(
        "--learning-decay",
        type=positive_float,
        default=cfg.learning_decay,
        metavar="K",
        help=f"online step size decay (default: {cfg.learning_decay})",
    )
    fit.add_argument(
        "--learning-offset",
        type=positive_float,
        default=cfg.learning_offset,
        metavar="TAU",
        help=f"online step size offset (default: {cfg.learning_offset:g})",
    )
    fit.add_argument(
        "--doc-topic-prior",
        type=positive_float,
        metavar="ALPHA",
        help="Dirichlet prior of document topics (default: 1/T)",
    )
    fit.add_argument(
        "--topic-word-prior", type=positive_float, metavar="ETA", help="Dirichlet prior of topic units (default: 1/T)"
    )
    fit.add_argument(
        "--max-doc-update-iter",
        type=positive_int,
        default=cfg.max_doc_update_iter,
        metavar="N",
        help=f"E-step iterations per document, at most (default: {cfg.max_doc_update_iter})",
    )
    fit.add_argument(
        "--mean-change-tol",
        type=positive_float,
        default=cfg.mean_change_tol,
        metavar="TOL",
        help=f"E-step convergence tolerance (default: {cfg.mean_change_tol:g})",
    )
    fit.add_argument("--seed", type=int, default=cfg.seed, help=f"random seed (default: {cfg.seed})")
    fit.add_argument(
        "--num-jobs", "--jobs", type=positive_int, metavar="N", help="worker processes (default: the CPUs available)"
    )
    add_verbosity(fit)

    label = add_subcommand(
        sub,
        "label",
        "give every cut of a label folder a topic label",
        "Label every cut of LABEL_DIR (all splits, or --split) with the topic model: OUT_DIR/<split>.topics "
        "(one topic per cut), OUT_DIR/<split>.topic_dist.npz (ids, dist (N, T) float32) and "
        "OUT_DIR/topics.json, written last. The labels must come from the k-means model the topic model "
        "was fitted on.",
        EXAMPLES.splitlines()[1],
    )
    label.add_argument(
        "--model", type=Path, required=True, metavar="MODEL", help="topic model written by 'speechssl topics fit'"
    )
    label.add_argument("label_dir", type=Path, metavar="LABEL_DIR", help="label folder (with labels.json)")
    label.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="topic folder to write")
    label.add_argument(
        "--split",
        dest="splits",
        action="extend",
        nargs="+",
        metavar="SPLIT",
        help="splits to label (default: every split)",
    )
    label.add_argument(
        "--num-jobs", "--jobs", type=positive_int, metavar="N", help="worker processes (default: the CPUs available)"
    )
    add_verbosity(label)

    analyze = add_subcommand(
        sub,
        "analyze",
        "relate topic labels to speaker, gender, language and style",
        "Report topic usage (topics used, entropy) and, for each of speaker, gender, language and style "
        "that the cuts carry, the NMI and purity between topic labels and that attribute, over the cuts "
        "of every split (or --split) pooled. The cuts are read from the manifests recorded in the label "
        "folder's labels.json.",
        EXAMPLES.splitlines()[2],
    )
    analyze.add_argument("topic_dir", type=Path, metavar="TOPIC_DIR", help="topic folder (with topics.json)")
    analyze.add_argument(
        "--split",
        dest="splits",
        action="extend",
        nargs="+",
        metavar="SPLIT",
        help="splits to analyse (default: every split)",
    )
    analyze.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_verbosity(analyze)
    return p


def _fit(args) -> int:
    from speechssl.labels.topics import DocumentConfig, TopicConfig, fit_label_dir

    documents = DocumentConfig(dedup=args.dedup, ngram=args.ngram, min_count=args.min_count)
    config = TopicConfig(
        num_topics=args.topics,
        passes=args.passes,
        batch_size=args.batch_size,
        learning_decay=args.learning_decay,
        learning_offset=args.learning_offset,
        doc_topic_prior=args.doc_topic_prior,
        topic_word_prior=args.topic_word_prior,
        max_doc_update_iter=args.max_doc_update_iter,
        mean_change_tol=args.mean_change_tol,
        max_fit_docs=args.max_fit_docs or None,
        seed=args.seed,
        n_jobs=args.num_jobs,
    )
    model = fit_label_dir(args.label_dir, args.split, documents, config, progress=True)
    model.save(args.model_out)
    info = model.info
    print(
        f"{args.model_out}: {model.num_topics} topics over {model.num_features} features "
        f"({model.num_units} units + {model.ngram_ids.size} n-grams), fitted on {info['docs']} of {info['docs_available']} "
        f"'{args.split}' utterances of {args.label_dir} ({info['passes']} passes) in {info['seconds']:.1f} s"
    )
    return 0


def _label(args) -> int:
    from speechssl.labels.topics import TopicModel, label_topic_dir

    model = TopicModel.load(args.model)
    result = label_topic_dir(
        model, args.label_dir, args.out_dir, args.splits, model_path=args.model, n_jobs=args.num_jobs, progress=True
    )
    for split, s in result.splits.items():
        used = sum(1 for c in s.topic_counts if c)
        print(f"{args.out_dir}/{split}.topics: {s.cuts} cuts, {used}/{result.num_topics} topics used")
    return 0


def _analyze(args) -> int:
    from speechssl.labels.topics import analyze_topic_dir

    analysis = analyze_topic_dir(args.topic_dir, args.splits, progress=True)
    if args.json:
        print(json.dumps(analysis.as_dict(), indent=2))
    else:
        print(analysis.format())
    return 0


@user_errors("topics")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    if args.command == "label":
        with own_output(args.out_dir, "topics label"):
            return _label(args)
    return {"fit": _fit, "analyze": _analyze}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
