# Cost mode of `scripts/bench probe --cost` and `scripts/bench queue --cost`:
# helpers both share, sourced after scripts/lib/services.sh.
#
# Instructions are counted by valgrind's callgrind over a fixed amount of
# work, which repeats to within a fraction of a per cent whatever else the
# machine does (a rate on two shared cores does not). A run of the same
# process with no work is subtracted, so that start-up (runtime, connections,
# migrations check) is not spread over the work.

BENCH_COST_DIR=${BENCH_COST_DIR:-target/bench/callgrind}

cost_install() {
  command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null || apt_install valgrind
  mkdir -p "$BENCH_COST_DIR"
}

# callgrind_cmd OUT_FILE: the valgrind command line (words) that writes its profile to OUT_FILE.
# Threads are counted together (one file); instruction-level detail is not kept (smaller files).
callgrind_cmd() {
  echo valgrind --tool=callgrind --callgrind-out-file="$1" --dump-instr=no --trace-children=no --log-file="$1.log"
}

# callgrind_total FILE: the instructions (Ir) the profile counted in all.
callgrind_total() {
  local total
  total=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$1" | tail -n 1)
  [ -n "$total" ] || { echo "no instruction total in $1 (see $1.log)" >&2; return 1; }
  echo "$total"
}

# per_unit TOTAL ZERO UNITS: (TOTAL - ZERO) / UNITS, rounded.
per_unit() {
  awk -v t="$1" -v z="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (t - z) / n; else printf "null" }'
}

# callgrind_top FILE N [yes|no]: the N functions with the most inclusive (or, with no, self)
# instructions, as "share%  Ir  function" lines, names cut to a readable width.
callgrind_top() {
  local file=$1 n=$2 inclusive=${3:-yes}
  callgrind_annotate --inclusive="$inclusive" --threshold=100 "$file" 2>/dev/null \
    | awk -v n="$n" -v total="$(callgrind_total "$file")" '
      / file:function/ { listing = 1; next }
      listing && /^ *[0-9,]+ / {
        ir = $1; gsub(",", "", ir); $1 = ""
        # The percentage column, when callgrind_annotate prints one, and the file part go.
        sub(/^ *\([^)]*\) */, ""); sub(/^ *[^ :]*:/, ""); sub(/ \[[^]]*\]$/, "")
        if (length($0) > 110) $0 = substr($0, 1, 107) "..."
        printf "   %5.1f%% %14s  %s\n", ir * 100 / total, ir, $0
        if (++shown == n) listing = 0
      }'
}
