# Sourced by test scripts: install Debian packages that are missing.

# ensure_packages PKG... — apt-get installs the named packages (running
# `apt-get update` once per script run first). Needs root, or sudo.
ensure_packages() {
  local sudo=
  if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
  if [ -z "${APT_UPDATED:-}" ]; then
    echo "Installing $* from Debian's packages…" >&2
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
