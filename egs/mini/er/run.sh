#!/usr/bin/env bash
# Emotion recognition on the synthetic mini corpus: its four prosody styles (neutral, happy, sad,
# angry) stand in for emotions. A pooling + MLP classifier (recipes/er/mini_mlp.yaml, class-balanced)
# on each system, trained on the training speakers and scored on the held-out test speakers (WA, UA,
# macro-F1, confusion matrix), compared in RESULTS.md:
#   fbank       80 log-mel filterbanks (no encoder)
#   mfcc        39 MFCC + deltas (no encoder)
#   random      the encoder's architecture with random weights (what the architecture alone gives)
#   pretrained  the pretrained encoder, frozen, a weighted sum of its layers
#   adapters    (optional) Houlsby adapters trained inside the frozen pretrained encoder
#   egs/mini/er/run.sh                                  # pretraining on the whole corpus first (../ssl/run.sh)
#   egs/mini/er/run.sh --encoder ../ssl/exp/pretrain/iter2/encoder.safetensors --stage 2
#   egs/mini/er/run.sh --tiny true --data /tmp/mini_data --exp /tmp/er_exp   # CI-sized
# Relative paths (--data, --exp, --encoder) are relative to this folder.
# Stages:
#   0  synthesise the mini corpus into $data/mini (resumable; skipped once complete)
#   1  the encoder: --encoder, or ../ssl/run.sh's iterations       $exp/ssl (encoder of its last iteration)
#   2  train one model per system                                    $exp/er/<system>
#   3  classify the test split with each model (WA, UA, F1, confusion)  $exp/er/<system>/eval_test
#   4  the table of WA, UA and macro-F1 of every system, printed     $exp/RESULTS.md
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
config=../../../recipes/er/mini_mlp.yaml  # the training config
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
task=er
train_args=()
evaluate_args=()
test_what="classify the test split"
results_what="WA, UA and macro-F1"
results_title="Mini corpus emotion (prosody style) recognition: MFCC / fbank vs a random and a pretrained encoder"
results_notes() {
  echo "Trained on the training speakers (recipes/er/mini_mlp.yaml${steps:+ with $steps steps}), scored on the" \
    "test split (held-out speakers). Encoder: $encoder. Each row's confusion matrix: <folder>/confusion.md and confusion.png."
}
. "$(dirname "$0")/../utterance_task.sh"  # the stages, shared with ../sv/run.sh
