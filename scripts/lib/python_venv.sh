# A PyPI package in a private venv, for tests that talk to a Python peer.
# Sourced by scripts/test; not run on its own.
#
# python_venv DIR CHECK REQUIREMENT... prints the venv's python once the Python
# statement CHECK runs there without error (e.g. `import bullmq`), installing
# the REQUIREMENTs into DIR first (the venv is kept between runs, so they are
# downloaded once, and remade when CHECK fails). Fails when PyPI cannot be reached.

python_venv() {
  local venv check=$2
  venv=$(realpath -m "$1")
  shift 2
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "$venv/bin/python"
    return 0
  fi
  command -v python3 >/dev/null || apt_install python3 >/dev/null
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    apt_install python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv" >/dev/null
  fi
  log "installing PyPI $* into $venv"
  if "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2; then
    echo "$venv/bin/python"
  else
    rm -rf "$venv"
    return 1
  fi
}
