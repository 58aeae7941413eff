#!/usr/bin/env bash
# `make audit` (SECURITY.md): the security checks, each run even when an earlier one fails.
#   1. ruff's security rules (S) over the code; the exceptions are commented in pyproject.toml
#      or as `# noqa: S…` with a reason (a stale noqa is reported too: RUF100);
#   2. a secret scan against the reviewed allow-list .secrets.baseline (scripts/audit_secrets.py);
#   3. hadolint on docker/Dockerfile;
#   4. the Helm chart's rendered security context and NetworkPolicies (scripts/check_chart_security.py);
#   5. pip-audit on the runtime dependencies and npm audit on the JavaScript SDK
#      (scripts/audit_deps.py): a database that cannot be reached is one line, not a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV_BIN:-.venv/bin}
PY=$BIN/python
failed=()

step() {
    local name=$1
    shift
    echo "--- audit: $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

# lint.external=[] makes RUF100 check the `# noqa: S…` comments that `make lint` cannot see.
step "ruff security rules" "$BIN/ruff" check --extend-select S --config 'lint.external = []' .
step "secret scan" "$PY" scripts/audit_secrets.py
hadolint() { "$BIN/hadolint" --failure-threshold info docker/Dockerfile && echo "hadolint: ok"; }
step "hadolint" hadolint
step "chart security" "$PY" scripts/check_chart_security.py
step "dependency vulnerabilities" "$PY" scripts/audit_deps.py

if ((${#failed[@]})); then
    printf 'audit: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')"
    exit 1
fi
echo "audit: all checks passed"
