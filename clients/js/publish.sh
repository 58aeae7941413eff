#!/usr/bin/env bash
# Copy the SDK's source into the edge, which serves it at /sdk/ (and ships it in
# its wheel and image). tests/browser/test_sdk_files.py fails when they differ.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="$here/../../services/edge/src/accord/edge/static/sdk"
mkdir -p "$target"
rm -f "$target"/*.js
cp "$here"/src/*.js "$target"/
echo "copied $(ls "$here"/src/*.js | wc -l) files to services/edge/src/accord/edge/static/sdk"
