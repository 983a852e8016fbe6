#!/bin/sh
# The soak of issue 21: the fault and hostile-frames suites, long variants, in a
# loop for SECONDS (default 3600), inside the sandbox.  Each daemon's descriptors
# and RSS once ready and at the end of its test go to $OUT/footprint.jsonl; each
# round's pytest summary to $OUT/rounds.log.  Usage, as root:
#   tests/soak.sh VENV [SECONDS] [OUT]
set -eu
venv=$1; seconds=${2:-3600}; out=${3:-/var/tmp/slirpd-soak}
mkdir -p "$out"; : > "$out/footprint.jsonl"; : > "$out/rounds.log"
cd "$(dirname "$0")/.."
end=$(( $(date +%s) + seconds ))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  rc=0
  SLIRPD_LONG_TESTS=1 SLIRPD_SOAK_LOG="$out/footprint.jsonl" tests/sandbox.sh "$venv/bin/pytest" -q \
    -p no:cacheprovider tests/test_faults.py tests/test_hostile.py > "$out/round.last" 2>&1 || rc=$?
  echo "round $round rc=$rc $(tail -1 "$out/round.last")" >> "$out/rounds.log"
  [ "$rc" = 0 ] || cp "$out/round.last" "$out/round.$round.failed"
done
