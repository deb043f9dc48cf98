#!/usr/bin/env bash
# ALSNet on the real N2001 data: the runs behind docs/results.md, one at a time.
# Usage: bash scripts/real_alsnet.sh [DATA_DIR] [RUNS_DIR] [RUN ...]
#   RUN: paper-als-vs-normal, loso-als-vs-normal, paper-three-class, loso-three-class
#        (default: all four). A LOSO run that was killed is resumed, not restarted.
# Recipe (named deviations, reported in each run's metrics.json): random 0.125-s training
# crops; 20 epochs for the paper split, 6 per LOSO fold (14 or 19 folds on 2 cores).
set -euo pipefail
DATA=${1:-data/N2001}
RUNS=${2:-runs}
shift $(( $# < 2 ? $# : 2 ))
WHICH=("$@")
[ ${#WHICH[@]} -eq 0 ] && WHICH=(paper-als-vs-normal loso-als-vs-normal paper-three-class loso-three-class)
for run in "${WHICH[@]}"; do
  protocol=${run%%-*}
  task=${run#*-}
  case $protocol in
    paper) epochs=20; out="$RUNS/paper-$task" ;;
    loso) epochs=6; out="$RUNS/loso-$task-alsnet" ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  if [ "$protocol" = loso ] && [ -f "$out/config.json" ] && [ ! -f "$out/metrics.json" ]; then
    alsnet train --resume "$out" --quiet
  else
    alsnet train --data "$DATA" --task "$task" --protocol "$protocol" --train-crop 0.125 \
      --max-epochs "$epochs" --out "$out" --force --quiet
  fi
done
