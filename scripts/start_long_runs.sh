#!/usr/bin/env bash
# Start (or continue) every long run of issue #13 in the background on a 2-core CPU: two
# single-thread lanes of scripts/long_runs.sh and the paper split's full-recipe run.
#
#   bash scripts/start_long_runs.sh          # logs in logs/; `pkill -f long_runs` stops them
#   ACCELERATOR=gpu bash scripts/long_runs.sh  # instead, on a machine with a GPU
#
# Each process runs from a snapshot of the code (a git worktree of HEAD in ../alsnet-snap,
# with its own kernel cache), so editing the tree meanwhile does not change a run midway.
set -eu
cd "$(dirname "$0")/.."
repo=$PWD
snap=${SNAP:-$repo/../alsnet-snap}
git worktree prune
if [ -e "$snap" ]; then
  git -C "$snap" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || { echo "start_long_runs.sh: $snap exists and is not a worktree (set SNAP=...)" >&2; exit 2; }
  git -C "$snap" checkout -q --detach "$(git rev-parse HEAD)"
else
  git worktree add -q -f --detach "$snap" HEAD
fi
mkdir -p logs
cp scripts/long_runs.sh logs/long_runs.running.sh   # bash reads a script as it runs: run a copy
export ALSNET_CACHE_DIR=${ALSNET_CACHE_DIR:-$snap/.cache} PYTHONPATH=$snap/src OMP_NUM_THREADS=1
for lane in 0 1; do
  LANE=$lane nohup nice -n 10 bash logs/long_runs.running.sh > "logs/long_runs.$lane.log" 2>&1 &
done
ONLY=paper nohup nice -n 10 bash logs/long_runs.running.sh > logs/paper.log 2>&1 &
echo "started: lanes 0 and 1 (logs/long_runs.{0,1}.log) and the paper run (logs/paper.log), code $(git -C "$snap" rev-parse --short HEAD)"
