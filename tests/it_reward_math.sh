#!/usr/bin/env bash
# it_reward_math.sh — `srlm reward-math` CLI: one check, JSONL streams (both input forms,
# a bad line), usage errors, --help. Needs SRLM_BIN.
set -euo pipefail
BIN=${SRLM_BIN:?SRLM_BIN not set}
T=$(mktemp -d /tmp/srlm_it_rmath.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$BIN" reward-math --gold '\frac{1}{2}' --pred 'so $\boxed{0.5}$.')
echo "$out" | grep -q '"correct":true' || fail "one check: $out"
echo "$out" | grep -q '"rule":"boxed"' || fail "rule: $out"
echo "$out" | grep -q '"format_ok":true' || fail "format_ok: $out"

out=$("$BIN" reward-math --gold '4\sqrt{2}' --pred '\boxed{4}')
echo "$out" | grep -q '"verdict":"wrong"' || fail "4 vs 4sqrt2: $out"

cat > "$T/in.jsonl" <<'J'
{"gold": "18", "pred": "#### 18"}
{"problem": {"id": "x", "answer": "\\{1,2\\}"}, "completion": "\\boxed{2}, \\boxed{1}"}
{"gold": "5", "pred": "no idea"}
J
"$BIN" reward-math --jsonl "$T/in.jsonl" > "$T/out.jsonl"
[ "$(wc -l < "$T/out.jsonl")" -eq 3 ] || fail "jsonl line count"
sed -n 1p "$T/out.jsonl" | grep -q '"rule":"hash"' || fail "jsonl line 1"
sed -n 2p "$T/out.jsonl" | grep -q '"correct":true' || fail "jsonl line 2"
sed -n 3p "$T/out.jsonl" | grep -q '"correct":false' || fail "jsonl line 3"
"$BIN" reward-math --jsonl < "$T/in.jsonl" | cmp -s - "$T/out.jsonl" || fail "stdin vs file"

printf '{"gold": "1", "pred": "1"}\nnot json\n' > "$T/bad.jsonl"
set +e
"$BIN" reward-math --jsonl "$T/bad.jsonl" > "$T/bad.out" 2> "$T/bad.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "bad line exit $rc"
grep -q "bad.jsonl:2" "$T/bad.err" || fail "bad line message: $(cat "$T/bad.err")"

set +e
"$BIN" reward-math --gold 1 > /dev/null 2>&1; rc=$?
set -e
[ $rc -eq 2 ] || fail "usage error exit $rc"
"$BIN" reward-math --help | grep -q -- "--connect" || fail "--help"
echo "it_reward_math: ok"
