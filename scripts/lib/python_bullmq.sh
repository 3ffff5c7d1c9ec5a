# PyPI `bullmq` (BullMQ's Python client) in a private venv, for the interop tests.
# Sourced by scripts/test and the queue bench; not run on its own.
#
# setup_python_bullmq DIR installs it into the venv DIR (kept between runs, so
# it is downloaded once) and exports GEOCTL_TEST_PYTHON, the venv's python.
# When PyPI cannot be reached it says so loudly and leaves GEOCTL_TEST_PYTHON
# unset: the interop tests then skip, or fail where scripts/test requires them
# (GEOCTL_TEST_PYTHON_BULLMQ=required, as root).

source scripts/lib/python_venv.sh

PYTHON_BULLMQ_VERSION=${PYTHON_BULLMQ_VERSION:-3.4.4}
# bullmq 3.4 accepts redis-py up to 8, but redis-py 8 reads every reply within a 5 s socket
# timeout by default, and a BullMQ worker blocks on the queue's marker for up to 10 s (until its
# next delayed job is due): the read times out, the client retries the same block, and a waiting
# worker never takes a delayed job due more than ~5 s after it went to sleep. redis-py 7 waits.
PYTHON_REDIS_SPEC=${PYTHON_REDIS_SPEC:-redis<8}

setup_python_bullmq() {
  local python
  # A venv that holds redis-py 8 (from before the pin) is remade.
  local check='import bullmq, redis, sys; sys.exit(int(redis.__version__.split(".")[0]) >= 8)'
  if python=$(python_venv "$1" "$check" "bullmq==$PYTHON_BULLMQ_VERSION" "$PYTHON_REDIS_SPEC"); then
    export GEOCTL_TEST_PYTHON="$python"
  else
    log "WARNING: PyPI is unreachable; the BullMQ Python interop tests will be skipped, or fail as root"
  fi
}
