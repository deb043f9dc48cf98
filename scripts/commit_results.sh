#!/usr/bin/env bash
# Commit one finished fold's small files under results/ (used as `alsnet train --on-fold-done`).
#
#   alsnet train ... --out results/NAME --on-fold-done "bash scripts/commit_results.sh {dir}"
#
# Only the fold's own folder is committed (`git commit -- PATH`), whatever else is staged;
# checkpoints and inner-model weights are ignored by results/.gitignore. Retries when
# another commit holds the index lock.
set -u
dir=${1:?usage: commit_results.sh FOLD_DIR}
repo=$(git -C "$(dirname "$dir")" rev-parse --show-toplevel) || exit 1
rel=$(realpath --relative-to="$repo" "$dir")
cd "$repo" || exit 1
# a finished fold (done.json) or run (metrics.json) no longer needs the checkpoints a session
# committed to resume it (scripts/commit_in_progress.sh): remove them (git rm: a pathspec
# commit would otherwise re-add a file it still finds; nothing reads them any more)
if [ -f "$rel/done.json" ] || [ -f "$rel/metrics.json" ]; then
  tracked=$(git ls-files -- "$rel" | grep '/checkpoints/' || true)
  if [ -n "$tracked" ]; then
    echo "$tracked" | xargs git rm -q -f --   # -f: a checkpoint changed since it was committed
  fi
fi
if [ -z "$(git status --porcelain -- "$rel")" ]; then
  exit 0    # nothing new (committed already, e.g. by the --on-fold-done hook)
fi
for _ in 1 2 3 4 5 6; do
  if git add -- "$rel" 2>/dev/null && git commit -q -m "results: $rel finished" -- "$rel"; then
    exit 0
  fi
  sleep $((RANDOM % 5 + 2))
done
echo "commit_results.sh: could not commit $rel" >&2
exit 1
