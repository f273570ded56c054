#!/usr/bin/env bash
# Parley's benchmark (issue 3, SPEC §11): builds the release binaries, raises the file-descriptor
# limit, creates a fresh PostgreSQL database, then runs `parley-bench` as its own process. It
# starts two `parley` instances on that database sharing one Redis, prints every figure and a
# table, and writes JSON.
#
#   bench/run.sh                      full run (several minutes), JSON in bench/results.json
#   bench/run.sh --quick              smoke run (well under 2 minutes), JSON in bench/results-quick.json;
#                                     exits non-zero on any error or lost message (never on timings)
#   bench/run.sh --scenarios floor,delivery --json /tmp/r.json     a subset, elsewhere
#   bench/run.sh --help               every option (sizes of each scenario)
#
# Environment: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_DB (default
# parley_bench; dropped and recreated), BENCH_REDIS_URL (default redis://127.0.0.1:6379),
# CARGO_TARGET_DIR (where the binaries are built).
set -euo pipefail
cd "$(dirname "$0")/.."

pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
db="${BENCH_DB:-parley_bench}"
redis_url="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
target_dir="${CARGO_TARGET_DIR:-target}"

args=("$@")
json=""
quick=0
help=0
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --quick) quick=1 ;;
    --json) json="${args[$((i + 1))]:-}" ;;
    --json=*) json="${args[$i]#--json=}" ;;
    -h|--help) help=1 ;;
  esac
done
if [ -z "$json" ]; then
  if [ "$quick" = 1 ]; then json=bench/results-quick.json; else json=bench/results.json; fi
  args+=(--json "$json")
fi

echo "== building release binaries (parley, parley-bench)"
cargo build --release -q -p parley -p bench
if [ "$help" = 1 ]; then exec "$target_dir/release/parley-bench" --help; fi

# Every WebSocket is a descriptor in the bench and in a server: 10 000 connections need more
# than the usual 1 024. Children (the parley instances) inherit the limit.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then ulimit -n 1048576 2>/dev/null || ulimit -n 65536; else ulimit -n "$hard"; fi
if [ "$(ulimit -n)" -lt 12000 ] && [ "$quick" = 0 ]; then
  echo "warning: ulimit -n is $(ulimit -n); the 10 000-connection steps may fail" >&2
fi

command -v psql >/dev/null || { echo "psql is needed to create the database" >&2; exit 1; }
psql "$pg/postgres" -qAtc "SELECT 1" >/dev/null || { echo "PostgreSQL is not answering at $pg" >&2; exit 1; }
if command -v redis-cli >/dev/null; then
  [ "$(redis-cli -u "$redis_url" ping 2>/dev/null)" = PONG ] || { echo "Redis is not answering at $redis_url" >&2; exit 1; }
fi

echo "== fresh database $db"
psql "$pg/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"

echo "== parley-bench (fd limit $(ulimit -n))"
status=0
"$target_dir/release/parley-bench" \
  --parley "$target_dir/release/parley" \
  --database-url "$pg/$db" \
  --redis-url "$redis_url" \
  "${args[@]}" || status=$?

# The database is only scratch; keep it after a full run for inspection, drop it after --quick.
if [ "$quick" = 1 ]; then
  psql "$pg/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
fi
exit "$status"
