#!/usr/bin/env bash
# The main job: run the whole mlcd pipeline on an example, as a newcomer would.
#
#   examples/run-example.sh [EXAMPLE] [mlcd run options...]    # EXAMPLE: credit-approval (default)
#
# Copies the example (only what a fresh clone has: no .mlcd/, .dvc/ or caches) to a new
# temporary folder, runs `mlcd run` there, and prints where the report is. The copy is
# kept so you can look around; MLCD_EXAMPLE_DIR=DIR uses DIR instead of a temporary one.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXAMPLE=credit-approval
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then EXAMPLE=$1; shift; fi
SRC="$HERE/$EXAMPLE"
[ -f "$SRC/mlcd.yaml" ] || { echo "run-example: no example $EXAMPLE in $HERE" >&2; exit 2; }
command -v mlcd >/dev/null || { echo "run-example: mlcd is not installed (./run setup)" >&2; exit 2; }

WORK=${MLCD_EXAMPLE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mlcd-$EXAMPLE.XXXXXX")}
mkdir -p "$WORK"
if git -C "$SRC" ls-files --error-unmatch mlcd.yaml >/dev/null 2>&1; then
  # exactly the tracked files, as a fresh clone has them
  (cd "$SRC" && git ls-files -z . | xargs -0 -I{} cp --parents {} "$WORK/")
else
  cp -R "$SRC/." "$WORK/"
  rm -rf "$WORK/.mlcd" "$WORK/.dvc" "$WORK/.dvcignore" "$WORK/.ruff_cache"
  find "$WORK" -name __pycache__ -prune -exec rm -rf {} +
fi
echo "==> $EXAMPLE copied to $WORK" >&2
echo "==> mlcd run $*" >&2
cd "$WORK"
set +e
mlcd run "$@"
code=$?
set -e
echo "==> example folder: $WORK" >&2
echo "==> report: $WORK/.mlcd/reports/summary.md (every stage: $WORK/.mlcd/reports/)" >&2
exit $code
