#!/usr/bin/env bash
# it_dataset_restart.sh — kill -9 of the dataset server (and of a consumer) mid-stream:
# consumers continue with no record lost or repeated relative to the committed cursor.
#
#  1. reader A reads 400 records in batches of 10, committing after each batch, while the
#     server is killed with SIGKILL and restarted; A's lazy-pirate client resends and finishes.
#  2. reader B (same consumer) is itself killed with SIGKILL mid-stream.
#  3. reader C (same consumer) resumes at B's last committed position and reads to 1000.
#  The records A + B (up to its last commit) + C read must be exactly stream positions
#  0..999 of a reference consumer, which also spans several epochs (every record once each).
#  Also: SIGTERM stops the server with exit status 0; shared mode across a restart.
set -euo pipefail
BIN=${SRLM_BIN:?SRLM_BIN not set}
T=$(mktemp -d /tmp/srlm-it-ds.XXXXXX)
SERVER_PID=
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
EP="ipc://$T/ds.sock"
DB="$T/db"
fail() { echo "FAIL: $*" >&2; exit 1; }
# wait until FILE has at least N "# commit" lines (at most 20 s)
wait_commits() {
    for _ in $(seq 200); do
        [[ $(grep -c '^# commit' "$1" 2>/dev/null || true) -ge $2 ]] && return 0
        sleep 0.1
    done
    fail "$1: no progress"
}

start_server() {
    "$BIN" dataset serve --db "$DB" --bind "$EP" 2>>"$T/server.log" &
    SERVER_PID=$!
    sleep 0.3
}

"$BIN" data synth --db "$DB" --kind arith --n 150 --split train --seed 7 2>/dev/null
start_server
COMMON=(--connect "$EP" --sources synth-arith --splits train --seed 3 --timeout-ms 400 --retries 30)

# 1. server killed -9 while reader A streams
"$BIN" dataset next "${COMMON[@]}" --consumer c --n 400 --batch 10 --commit-every 1 --delay-ms 50 \
    >"$T/a.out" 2>"$T/a.err" &
A=$!
wait_commits "$T/a.out" 8
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
sleep 0.6
start_server
wait "$A" || fail "reader A failed after the server restart: $(cat "$T/a.err")"
grep -q "did not answer" "$T/a.err" || fail "reader A never noticed the silent server (test too fast?)"
[[ $(grep -vc '^#' "$T/a.out") -eq 400 ]] || fail "reader A read $(grep -vc '^#' "$T/a.out") records, want 400"

# 2. reader B killed -9 mid-stream
"$BIN" dataset next "${COMMON[@]}" --consumer c --n 400 --batch 10 --commit-every 1 --delay-ms 50 \
    >"$T/b.out" 2>"$T/b.err" &
B=$!
wait_commits "$T/b.out" 8
kill -9 "$B"
wait "$B" 2>/dev/null || true
LAST=$(grep '^# commit' "$T/b.out" | tail -1 | awk '{print $3}')
[[ -n "$LAST" && "$LAST" -gt 400 && "$LAST" -lt 800 ]] || fail "reader B's last commit '$LAST' not mid-stream"

# 3. reader C resumes at the committed cursor: B's last commit, or one batch later when B
#    died after the server stored a commit but before B printed it
POS=$("$BIN" dataset next "${COMMON[@]}" --consumer c --n 1 --batch 1 | awk '{print $1}')
[[ "$POS" == "$LAST" || "$POS" == $((LAST + 10)) ]] || fail "consumer resumes at $POS, B's last commit was $LAST"
"$BIN" dataset next "${COMMON[@]}" --consumer c --n $((1000 - POS)) --batch 25 --commit-every 1 >"$T/c.out" 2>"$T/c.err" \
    || fail "reader C: $(cat "$T/c.err")"
FIRST_C=$(awk '!/^#/ {print $1; exit}' "$T/c.out")
[[ "$FIRST_C" == "$POS" ]] || fail "reader C started at $FIRST_C, want the committed cursor $POS"
# B's records below the committed cursor (B prints a batch before committing it)
awk -v last="$POS" '!/^#/ && $1 < last' "$T/b.out" >"$T/b.committed"
[[ $(wc -l <"$T/b.committed") -eq $((POS - 400)) ]] || fail "reader B did not print every committed record"

# reference: the same stream read in one go by a fresh consumer
"$BIN" dataset next "${COMMON[@]}" --consumer ref --reset --n 1000 --batch 100 >"$T/ref.out" 2>/dev/null
cat <(grep -v '^#' "$T/a.out") "$T/b.committed" <(grep -v '^#' "$T/c.out") >"$T/all.out"
cmp -s "$T/all.out" "$T/ref.out" || { diff "$T/all.out" "$T/ref.out" | head; fail "records lost or repeated"; }
# every epoch (150 records) covers every record exactly once
for e in 0 1 2 3 4 5; do
    n=$(awk -v e=$e '$1 >= e*150 && $1 < (e+1)*150 {print $2}' "$T/ref.out" | sort -u | wc -l)
    [[ $n -eq 150 ]] || fail "epoch $e has $n distinct records, want 150"
done

# shared mode: two readers share one stream; a server kill between them loses nothing
"$BIN" dataset next "${COMMON[@]}" --consumer s --shared --reset --n 100 --batch 10 >"$T/s1.out" 2>/dev/null
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
start_server
"$BIN" dataset next "${COMMON[@]}" --consumer s --shared --n 50 --batch 10 >"$T/s2.out" 2>/dev/null
cat "$T/s1.out" "$T/s2.out" | cmp -s - <(head -150 "$T/ref.out") || fail "shared stream lost or repeated records"

# SIGTERM: clean exit 0
kill -TERM "$SERVER_PID"
rc=0; wait "$SERVER_PID" || rc=$?
SERVER_PID=
[[ $rc -eq 0 ]] || fail "server exit status $rc after SIGTERM, want 0"
echo "it_dataset_restart: OK"
