#!/usr/bin/env bash
# Speaker verification on the synthetic mini corpus: x-vector heads (recipes/sv/mini_xvector.yaml,
# AAM-softmax over the 24 training speakers) on each system, scored on the trials of the 8 held-out
# test speakers (cosine, and AS-norm against the training utterances), compared in RESULTS.md:
#   fbank       80 log-mel filterbanks (no encoder)
#   mfcc        39 MFCC + deltas (no encoder)
#   random      the encoder's architecture with random weights (what the architecture alone gives)
#   pretrained  the pretrained encoder, frozen, a weighted sum of its layers
#   adapters    (optional) Houlsby adapters trained inside the frozen pretrained encoder
#   egs/mini/sv/run.sh                                  # pretraining on the whole corpus first (../ssl/run.sh)
#   egs/mini/sv/run.sh --encoder ../ssl/exp/pretrain/iter2/encoder.safetensors --stage 2
#   egs/mini/sv/run.sh --tiny true --data /tmp/mini_data --exp /tmp/sv_exp   # CI-sized
# Relative paths (--data, --exp, --encoder) are relative to this folder.
# Stages:
#   0  synthesise the mini corpus into $data/mini (resumable; skipped once complete)
#   1  the encoder: --encoder, or ../ssl/run.sh's iterations       $exp/ssl (encoder of its last iteration)
#   2  train one model per system                                    $exp/sv/<system>
#   3  score the test trials with each model (EER, minDCF, DET)      $exp/sv/<system>/eval_test
#   4  the table of EER and minDCF of every system, printed          $exp/RESULTS.md
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
data=../data                 # where the mini corpus goes, as $data/mini (egs/mini/run.sh's by default)
exp=exp                      # where the encoder, models and RESULTS.md go
hours=1.0                    # size of the mini corpus in hours of audio
tiny=false                   # true: the CI-sized corpus, pretraining and --steps 20
seed=0                       # seed of the corpus, pretraining and training
nj=$(nproc)                  # parallel jobs (corpus synthesis, pretraining's topic models)
encoder=""                   # a pretrained encoder (speechssl .safetensors, Hugging Face folder); empty: pretrain one (stage 1)
systems="fbank mfcc random pretrained"  # one model each (see above)
steps=""                     # training steps of every system (empty: the config's, 300; tiny: 20)
asnorm=true                  # also score with AS-norm (cohort: the training utterances)
config=../../../recipes/sv/mini_xvector.yaml  # the training config
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
case "$asnorm" in true|false) ;; *) echo "run.sh: --asnorm must be true or false, found '$asnorm'" >&2; exit 2 ;; esac
task=sv
train_args=("data.valid_trials=$data/mini/trials_dev.txt")
evaluate_args=(--trials "$data/mini/trials_test.txt" --asnorm "$asnorm")
test_what="score $data/mini/trials_test.txt"
results_what="EER and minDCF"
results_title="Mini corpus speaker verification: MFCC / fbank vs a random and a pretrained encoder"
results_notes() {
  echo "Trained on the training speakers (recipes/sv/mini_xvector.yaml${steps:+ with $steps steps}), scored on" \
    "$data/mini/trials_test.txt (held-out speakers). Encoder: $encoder. Each row's DET curve: <folder>/det.png."
}
. "$(dirname "$0")/../utterance_task.sh"  # the stages, shared with ../er/run.sh
