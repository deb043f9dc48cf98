#!/usr/bin/env bash
# Commit every unfinished training's resumable state under results/ (end of a session).
#
#   bash scripts/commit_in_progress.sh
#
# A fold still training has checkpoints/last.ckpt (saved after every epoch) and best.ckpt
# (the end of the fold loads it), history.csv and, in nested runs, epochs.npz; a plain run
# also needs its config.json. These are forced past results/.gitignore (about 1 MB per
# checkpoint) so that `--resume` on a fresh clone continues the fold from its latest epoch;
# scripts/commit_results.sh removes the checkpoints again once the fold is finished.
set -u
cd "$(dirname "$0")/.." || exit 1
paths=()
while IFS= read -r last; do
  fold=$(dirname "$(dirname "$last")")
  [ -f "$fold/done.json" ] && continue            # finished: commit_results.sh owns it
  for f in "$fold"/checkpoints/last.ckpt "$fold"/checkpoints/best.ckpt "$fold"/history.csv "$fold"/epochs.npz; do
    [ -f "$f" ] && paths+=("$f")
  done
  run=$fold
  while [ "$(dirname "$run")" != results ] && [ "$run" != . ]; do run=$(dirname "$run"); done
  [ -f "$run/config.json" ] && paths+=("$run/config.json")
done < <(find results -path '*/checkpoints/last.ckpt' | sort)
if [ ${#paths[@]} -eq 0 ]; then echo "commit_in_progress.sh: nothing in progress"; exit 0; fi
git add -f -- "${paths[@]}" && git commit -q -m "results: unfinished trainings' resumable state (checkpoints, epoch logs) at the end of a session" -- "${paths[@]}" \
  && echo "commit_in_progress.sh: committed ${#paths[@]} files" && git log --oneline -1
