#!/usr/bin/env bash
# it_dataset_cli.sh — `srlm data` from the command line: bundled import counts, stats, get,
# export -> jsonl re-import round trip, synth determinism, malformed input (file:line
# message, exit 1, store unchanged), usage errors (exit 2).
set -euo pipefail
BIN=${SRLM_BIN:?SRLM_BIN not set}
T=$(mktemp -d /tmp/srlm-it-dscli.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export SRLM_DS_NOSYNC=1
DB="$T/db"

"$BIN" data import --db "$DB" --bundled all 2>"$T/imp.err" || fail "bundled import: $(cat "$T/imp.err")"
"$BIN" data stats --db "$DB" --json >"$T/stats.json"
python3 - "$T/stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c = {}
for e in s["counts"]:
    c[(e["source"], e["split"])] = e["n"]
    assert len(e["import"]["files"][0]["sha256"]) == 64
want = {("gsm8k", "train"): 7473, ("gsm8k", "test"): 1319, ("math", "train"): 7500, ("math", "test"): 5000,
        ("math500", "test"): 500, ("humaneval", "test"): 164}
for k, v in want.items():
    assert c[k] == v, (k, c.get(k), v)
assert sum(v for (src, _), v in c.items() if src == "mbpp") == 974
assert sum(v for (src, _), v in c.items() if src == "mbpp-sanitized") == 427
assert s["total"] == 23357, s["total"]
PY
"$BIN" data get --db "$DB" gsm8k/test/0 | grep '"answer": "18"' >/dev/null || fail "get gsm8k/test/0"
"$BIN" data get --db "$DB" no/such/1 2>/dev/null && fail "get of a missing id succeeded"

# export -> re-import as canonical jsonl -> export again: identical
"$BIN" data export --db "$DB" --source humaneval --out "$T/he.jsonl"
[[ $(wc -l <"$T/he.jsonl") -eq 164 ]] || fail "export line count"
"$BIN" data import --db "$T/db2" --format jsonl --source humaneval --split test "$T/he.jsonl" 2>/dev/null
"$BIN" data export --db "$T/db2" >"$T/he2.jsonl"
cmp -s "$T/he.jsonl" "$T/he2.jsonl" || fail "export/import round trip differs"

# synth: same seed -> same records
"$BIN" data synth --db "$T/s1" --kind arith --n 50 --split train --seed 4 2>/dev/null
"$BIN" data synth --db "$T/s2" --kind arith --n 50 --split train --seed 4 2>/dev/null
cmp -s <("$BIN" data export --db "$T/s1") <("$BIN" data export --db "$T/s2") || fail "synth not deterministic"
"$BIN" data export --db "$T/s1" | grep '#### ' >/dev/null || fail "synth-arith lacks #### answers"

# malformed input: message with file:line, exit 1, store unchanged
before=$("$BIN" data export --db "$DB" | sha256sum)
printf '{"question":"a","answer":"#### 1"}\n{"question":"b","answer":"#### 2"}\n{"question": "c", oops}\n' >"$T/bad.jsonl"
rc=0; "$BIN" data import --db "$DB" --format gsm8k --split train "$T/bad.jsonl" 2>"$T/bad.err" || rc=$?
[[ $rc -eq 1 ]] || fail "malformed import exit $rc, want 1"
grep -q "bad.jsonl:3: bad JSON" "$T/bad.err" || fail "no file:line in: $(cat "$T/bad.err")"
head -c 4096 /dev/urandom >"$T/junk.bin"
"$BIN" data import --db "$DB" --format mbpp "$T/junk.bin" 2>"$T/junk.err" && fail "junk import succeeded"
grep -q "junk.bin" "$T/junk.err" || fail "junk error lacks the file name"
after=$("$BIN" data export --db "$DB" | sha256sum)
[[ "$before" == "$after" ]] || fail "a failed import changed the store"

# usage errors
rc=0; "$BIN" data import --db "$DB" --format csv --split x "$T/bad.jsonl" 2>/dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "unknown format exit $rc, want 2"
rc=0; "$BIN" data synth --db "$DB" --kind arith 2>/dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "synth without --n exit $rc, want 2"
rc=0; "$BIN" data frobnicate 2>/dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "unknown subcommand exit $rc, want 2"
"$BIN" data --help | grep "import" >/dev/null || fail "data --help"
"$BIN" dataset --help | grep "serve" >/dev/null || fail "dataset --help"
echo "it_dataset_cli: OK"
