# Sourced by test scripts: Segment's client libraries, for tests/segment_clients.rs.
#
#   ensure_segment_clients   installs, if missing, into target/segment-clients:
#                            segment-analytics-python (PyPI) in a virtualenv, and
#                            @segment/analytics-node, @segment/analytics-next and
#                            playwright-core (npm registry); plus Debian's chromium,
#                            python3-venv and nodejs. Exports TRACKD_SEGMENT_CLIENTS.

SEGMENT_PYTHON_VERSION=2.4.0
SEGMENT_NODE_VERSION=3.1.0
SEGMENT_NEXT_VERSION=1.84.3
PLAYWRIGHT_CORE_VERSION=1.65.2

ensure_segment_clients() {
  local dir=$PWD/target/segment-clients
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then ensure_packages "${missing[@]}"; fi
  mkdir -p "$dir"

  if ! "$dir/venv/bin/python" -c "import segment.analytics.version as v; assert v.VERSION == '$SEGMENT_PYTHON_VERSION'" 2>/dev/null; then
    echo "Installing segment-analytics-python $SEGMENT_PYTHON_VERSION…" >&2
    rm -rf "$dir/venv"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q --disable-pip-version-check \
      "segment-analytics-python==$SEGMENT_PYTHON_VERSION"
  fi

  local want="$SEGMENT_NODE_VERSION $SEGMENT_NEXT_VERSION $PLAYWRIGHT_CORE_VERSION"
  if [ "$(cat "$dir/node/.versions" 2>/dev/null)" != "$want" ]; then
    echo "Installing @segment/analytics-node $SEGMENT_NODE_VERSION, @segment/analytics-next $SEGMENT_NEXT_VERSION, playwright-core $PLAYWRIGHT_CORE_VERSION…" >&2
    rm -rf "$dir/node"
    mkdir -p "$dir/node"
    echo '{"private": true}' >"$dir/node/package.json"
    # playwright-core downloads no browser; it drives Debian's chromium.
    (cd "$dir/node" && npm install --no-audit --no-fund --loglevel=error \
      "@segment/analytics-node@$SEGMENT_NODE_VERSION" \
      "@segment/analytics-next@$SEGMENT_NEXT_VERSION" \
      "playwright-core@$PLAYWRIGHT_CORE_VERSION" >/dev/null)
    echo "$want" >"$dir/node/.versions"
  fi
  export TRACKD_SEGMENT_CLIENTS=$dir
}
