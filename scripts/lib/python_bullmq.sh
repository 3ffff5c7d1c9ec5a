# PyPI `bullmq` (BullMQ's Python client) in a private venv, for the interop tests.
# Sourced by scripts/test and the queue bench; not run on its own.
#
# setup_python_bullmq DIR installs it into the venv DIR and exports
# GEOCTL_TEST_PYTHON, the venv's python. When PyPI cannot be reached it says so
# loudly and leaves GEOCTL_TEST_PYTHON unset: the interop tests then report
# themselves skipped.

source scripts/lib/python_venv.sh

PYTHON_BULLMQ_VERSION=${PYTHON_BULLMQ_VERSION:-3.4.4}

setup_python_bullmq() {
  local python
  if python=$(python_venv "$1" bullmq "bullmq==$PYTHON_BULLMQ_VERSION"); then
    export GEOCTL_TEST_PYTHON="$python"
  else
    log "WARNING: PyPI is unreachable; the BullMQ Python interop tests will be SKIPPED"
  fi
}
