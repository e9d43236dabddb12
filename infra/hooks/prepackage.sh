#!/bin/sh
# azd prepackage (service api): ship compiled bytecode for the app's own modules. Flex Consumption runs the app from a
# read-only package, where Python cannot write __pycache__, and the remote build compiles none of the app's code
# (docs/development.md, "Bytecode"). Checked-hash caches stay valid after the build copies the files.
set -eu
cd "$(dirname "$0")/../.."
python=""
for candidate in "${PYTHON313:-}" python3.13; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
    python="$candidate"
    break
  fi
done
if [ -z "$python" ]; then
  echo "prepackage: Python 3.13 not found (set PYTHON313): deploying without compiled bytecode; cold starts compile the app's modules" >&2
  exit 0
fi
"$python" -m compileall -q -f --invalidation-mode checked-hash function_app.py shared
echo "prepackage: compiled the app's modules for $("$python" -c 'import sys; print(sys.implementation.cache_tag)') (checked-hash caches)"
