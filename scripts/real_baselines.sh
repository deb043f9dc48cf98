#!/usr/bin/env bash
# Classical baselines on the real N2001 data: every task x protocol in docs/results.md.
# Usage: bash scripts/real_baselines.sh [DATA_DIR] [RUNS_DIR]
set -euo pipefail
DATA=${1:-data/N2001}
RUNS=${2:-runs}
for task in als-vs-normal three-class; do
  for protocol in paper loso; do
    for model in svm rf knn; do
      alsnet train --data "$DATA" --task "$task" --protocol "$protocol" --model "$model" \
        --out "$RUNS/$protocol-$task-$model" --force --quiet
    done
  done
done
