#!/usr/bin/env bash
# The long runs of issue #13, in priority order, each resumed from its committed folds.
#
#   nohup nice -n 10 bash scripts/long_runs.sh > logs/long_runs.log 2>&1 &
#   ACCELERATOR=gpu bash scripts/long_runs.sh        # on a machine with a GPU (Lightning)
#
# On a 2-core CPU, two lanes of one thread each finish more than one lane of two threads
# (two single-thread training steps side by side: 0.63 s each; one 2-thread step: 0.44 s,
# so 1.38x the throughput). Each lane takes the first run of the list below that is not
# finished, not held by the other lane (a lock in logs/locks/) and not waiting for the run
# its budget comes from; after each run it starts again from the top, so the list's order
# is the order in which runs finish, whatever their lengths:
#
#   for lane in 0 1; do LANE=$lane OMP_NUM_THREADS=1 \
#     nohup nice -n 10 bash scripts/long_runs.sh > logs/long_runs.$lane.log 2>&1 & done
#
# Every run writes into results/NAME and commits each finished inner and outer fold
# (scripts/commit_results.sh), so a session that ends mid-run loses at most the inner
# training in progress; running this script again continues where the committed folds end.
# DATA defaults to data/N2001 (unpacked from ../shared/data, see docs/data.md).
set -u
cd "$(dirname "$0")/.."
DATA=${DATA:-data/N2001}
ACC=${ACCELERATOR:-cpu}
hook="bash $PWD/scripts/commit_results.sh {dir}"

LANE=${LANE:-0}      # lane 0 also builds the choices among finished runs (see choose)
started=0 waiting=0 failed=" "
nested() {  # nested NAME TASK MODEL SEED [extra train options...]
  local name=$1 task=$2 model=$3 seed=$4
  shift 4
  [ "$started" = 1 ] && return 0      # one run per pass: the next pass starts from the top
  local out=results/$name
  local job=$name${FOLDS:+@${FOLDS// /+}}   # a screen's outer folds are jobs of their own (see 4.)
  done_here "$out" && return 0
  case "$failed" in *" $job "*) return 0 ;; esac
  local a prev=
  for a in "$@"; do    # a budgeted run waits for its budget run's choices
    if [ "$prev" = --budget-from ] && ! finished "$a"; then waiting=1; return 0; fi
    prev=$a
  done
  mkdir -p logs/locks
  local fd rc
  exec {fd}>"logs/locks/$job.lock"
  if ! flock -n "$fd"; then exec {fd}>&-; waiting=1; return 0; fi   # the other lane runs it
  if done_here "$out"; then exec {fd}>&-; return 0; fi               # finished meanwhile
  started=1
  echo "== $name: $(date -u +%FT%TZ)${FOLDS:+ (outer folds $FOLDS only)}"
  local only=() f
  for f in $FOLDS; do only+=(--outer-fold "$f"); done
  if [ -f "$out/config.json" ]; then
    alsnet train --resume "$out" --quiet "${only[@]}"
  else
    alsnet train --data "$DATA" --task "$task" --protocol nested --outer group-kfold --folds 5 \
      --inner-folds 3 --model "$model" --seed "$seed" --split-seed 0 --accelerator "$ACC" --quiet \
      --out "$out" --on-fold-done "$hook" "${only[@]}" "$@"
  fi
  rc=$?
  if [ $rc -ne 0 ]; then failed="$failed$job "; echo "== $job: failed (exit $rc), not retried by this lane"; fi
  if [ -n "$FOLDS" ]; then   # a screen's job commits its own outer folds, not the other lane's
    for f in $FOLDS; do bash scripts/commit_results.sh "$out/$f"; done
  else
    bash scripts/commit_results.sh "$out"
  fi
  commit_model "$out"
  exec {fd}>&-
}
commit_model() {
  # the procedure on every subject (--outer none) ends in an ensemble model (~1 MB): kept, so that
  # a choice among such runs (scripts/nested_choose.py) can be made in a later session
  local m=$1/all-subjects/model
  if [ -f "$m.safetensors" ] && [ -f "$m.json" ]; then
    git add -f -- "$m.safetensors" "$m.json" \
      && git commit -q -m "results: $1 ensemble model (the procedure on every subject)" -- "$m.safetensors" "$m.json"
  fi
}
finished() {  # a nested run with its metrics, or the procedure on every subject with its model
  [ -f "$1/metrics.json" ] || [ -f "$1/all-subjects/model.safetensors" ]
}
FOLDS=    # set (e.g. "outer-0 outer-1"): the runs queued meanwhile train only these outer folds (a screen)
done_here() {  # finished, or (a screen) each of its outer folds scored
  if [ -z "$FOLDS" ]; then finished "$1"; return; fi
  local f
  for f in $FOLDS; do [ -f "$1/$f/predictions.csv" ] || return 1; done
}
# choose NAME RUN...: the variant chosen per outer fold by the inner CV (no training), once every
# RUN is finished (lane 0 only, between runs: two lanes would write the same folder)
choose() {
  local name=$1
  shift
  [ "$LANE" = 0 ] && [ "$started" = 0 ] || return 0
  finished "results/$name" && return 0    # built from finished runs, which never change
  local r
  for r in "$@"; do
    finished "$r" || return 0
  done
  echo "== $name: $(date -u +%FT%TZ)"
  python3 scripts/nested_choose.py --out "results/$name" "$@" && bash scripts/commit_results.sh "results/$name" \
    && commit_model "results/$name"
}

# 0. the paper's split with the paper's full recipe (whole windows, up to 100 epochs, early
#    stopping 25): one training of ~3.6 CPU-hours here, minutes on a GPU. Its own process:
#    ONLY=paper OMP_NUM_THREADS=1 nohup nice -n 10 bash scripts/long_runs.sh > logs/paper.log 2>&1 &
#    (an unfinished run is continued from its checkpoints/last.ckpt, saved after every epoch;
#    commit that file at the end of a session so that the next one can resume it).
paper_full() {
  local out=results/paper-als-vs-normal-alsnet-full-s0
  if [ -f "$out/metrics.json" ]; then echo "== paper split, full recipe: finished"; return 0; fi
  echo "== paper split, full recipe: $(date -u +%FT%TZ)"
  if [ -f "$out/config.json" ]; then
    alsnet train --resume "$out" --quiet
  else
    alsnet train --data "$DATA" --task als-vs-normal --protocol paper --model alsnet --seed 0 \
      --max-epochs 100 --patience 25 --accelerator "$ACC" --quiet --out "$out"
  fi
  [ -f "$out/metrics.json" ] || return 1
  bash scripts/commit_results.sh "$out"
  # the reproduction's model itself (85,249 weights, 0.3 MB): kept, unlike inner-fold models
  for f in "$out/model.safetensors" "$out/model.json"; do
    [ -f "$f" ] && git add -f -- "$f"
  done
  git commit -q -m "results: $out model (paper split, full recipe)" -- "$out/model.safetensors" "$out/model.json" || true
}
if [ "${ONLY:-}" = paper ]; then paper_full; exit $?; fi

queue() {

# 1. fair baselines, both tasks (minutes each)
for task in als-vs-normal three-class; do
  for m in rf svm knn; do nested "nested-$task-$m-s0" "$task" "$m" 0; done
done
# 1b. the baselines at seeds 1 and 2 (the random forest and the SVM's internal Platt CV use
#     the seed; kNN does not, and its seeds are then identical: said where it is reported)
for seed in 1 2; do
  for task in als-vs-normal three-class; do
    for m in rf svm knn; do nested "nested-$task-$m-s$seed" "$task" "$m" "$seed"; done
  done
done
# 2. exact ALSNet, 0.125-s crops, up to 40 epochs (the plateau schedule and early stopping
#    act within that), seed 0, both tasks
for task in als-vs-normal three-class; do
  nested "nested-$task-alsnet-crop0.125-s0" "$task" alsnet 0 --train-crop 0.125 --max-epochs 40
done
# 3. seeds 1 and 2 of exact ALSNet, then the declared variants (seeds 0, 1, 2), each outer fold's inner
#    models trained for the epoch seed 0 chose for that outer fold + 10 (declared in
#    docs/results.md, "The budget of seeds 1 and 2 and of the variants"). Each lane runs seed 0
#    of its task before these, so that run's folds are chosen when they are needed.
for seed in 1 2; do
  for task in als-vs-normal three-class; do
    nested "nested-$task-alsnet-crop0.125-s$seed" "$task" alsnet "$seed" --train-crop 0.125 --max-epochs 40 \
      --budget-from "results/nested-$task-alsnet-crop0.125-s0" --budget-margin 10
  done
done
VARIANTS=("balanced --class-weight balanced" "subjsampling --sampling class-subject-balanced"
          "gainpolarity --augment gain-polarity")
variants() {  # variants SEED: the three declared variants at one seed, both tasks
  local seed=$1 variant name
  for variant in "${VARIANTS[@]}"; do
    set -- $variant
    name=$1
    shift
    for task in als-vs-normal three-class; do
      nested "nested-$task-alsnet-$name-crop0.125-s$seed" "$task" alsnet "$seed" --train-crop 0.125 \
        --max-epochs 40 --budget-from "results/nested-$task-alsnet-crop0.125-s0" --budget-margin 10 "$@"
    done
  done
}
# 3b. the variant chosen per outer fold by the inner CV, each seed whose four runs are finished
#     (seconds each; lane 0 only)
choices() {
  local seed task
  for seed in 0 1 2; do
    for task in als-vs-normal three-class; do
      choose "nested-$task-alsnet-choice-crop0.125-s$seed" "results/nested-$task-alsnet-crop0.125-s$seed" \
        results/nested-$task-alsnet-{balanced,subjsampling,gainpolarity}-crop0.125-s$seed
    done
  done
}
variants 0          # the screen
choices
# 3c. the bundled models: the same procedure on every subject (--outer none, seed 0), each recipe's
#     inner 3-fold CV over all subjects with the largest epoch exact seed 0 chose + 10; then the
#     recipe and epoch chosen on the pooled out-of-fold predictions (scripts/build_pretrained.py
#     --from-run results/allsubjects-TASK-alsnet-choice-crop0.125-s0 writes the bundled files;
#     before the variants' seeds 1 and 2, so that the rebuilt models come first and their cards
#     take each seed as it is finished)
for variant in "exact" "${VARIANTS[@]}"; do
  set -- $variant
  name=$1
  shift
  sfx=-$name
  [ "$name" = exact ] && sfx=
  for task in als-vs-normal three-class; do
    nested "allsubjects-$task-alsnet$sfx-crop0.125-s0" "$task" alsnet 0 --outer none --train-crop 0.125 \
      --max-epochs 40 --budget-from "results/nested-$task-alsnet-crop0.125-s0" --budget-margin 10 "$@"
  done
done
for task in als-vs-normal three-class; do
  choose "allsubjects-$task-alsnet-choice-crop0.125-s0" "results/allsubjects-$task-alsnet-crop0.125-s0" \
    results/allsubjects-$task-alsnet-{balanced,subjsampling,gainpolarity}-crop0.125-s0
done
variants 1
variants 2
choices
# 4. the crop screen of the budget study, one seed, ALS vs normal, the full 40-epoch budget, on the
#    first two outer folds (6 inner trainings per crop length; declared in docs/results.md, "The crop
#    screen on two outer folds"), drawn beside the same 6 inner trainings of the 0.125-s run
#    (1-s crops, i.e. whole windows, cost ~4x: last). Each outer fold is a job of its own (its own
#    lock), so that both lanes work on one crop length: the 1-s folds are not left to one lane.
#    Two jobs share the run folder as the jobs of a cluster array do (alsnet train --outer-fold).
for crop in 0.25 0.5 1; do
  for FOLDS in outer-0 outer-1; do
    nested "nested-als-vs-normal-alsnet-crop$crop-s0" als-vs-normal alsnet 0 --train-crop "$crop" --max-epochs 40
  done
done
FOLDS=
}

while :; do
  started=0 waiting=0
  queue
  [ "$started" = 1 ] && continue
  [ "$waiting" = 1 ] || break
  sleep 300    # every run left is held by the other lane or waits for its budget run
done
echo "== nothing left to run: $(date -u +%FT%TZ)"
