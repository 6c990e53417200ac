#!/usr/bin/env bash
# it_harden_tokenizer.sh — `srlm tokenize --jsonl` / `srlm detokenize` on hostile input:
# a UTF-8 BOM on the first line and blank / CRLF lines are accepted, "\u0000" in a JSON
# string is an ordinary byte that round-trips (chat content with NUL is refused), bad
# lines stop with stdin:LINE and exit 1 (never a crash), bad id lists are refused.
set -euo pipefail
BIN=${SRLM_BIN:?SRLM_BIN not set}
T=$(mktemp -d /tmp/srlm-it-htok.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$T"
# the byte-level vocabulary loads in milliseconds; the CLI paths are the same as for Qwen
"$BIN" tokenizer init-bytes --out tok >/dev/null
TK=(--tokenizer tok)

# BOM, blank lines, CRLF: the same ids as the plain input
printf '"ab"\n"cd"\n' | "$BIN" tokenize "${TK[@]}" --jsonl >want.txt
printf '\xef\xbb\xbf"ab"\r\n\r\n   \n"cd"\r\n\n' | "$BIN" tokenize "${TK[@]}" --jsonl >got.txt || fail "BOM/blank/CRLF input rejected"
cmp -s want.txt got.txt || fail "BOM/blank/CRLF ids differ: $(cat got.txt)"

# \u0000 is a byte: raw detokenize gives it back
printf '"a\\u0000b"\n' | "$BIN" tokenize "${TK[@]}" --jsonl >nul.txt || fail "\\u0000 rejected"
ids=$(tr -d '[]\n' <nul.txt)
"$BIN" detokenize "${TK[@]}" --raw -n "$ids" | od -An -c | tr -d ' \n' | grep -qx 'a\\0b' || fail "NUL round trip: $ids"
printf '{"q":"x\\u0000"}\n' | "$BIN" tokenize "${TK[@]}" --jsonl --field q >/dev/null || fail "--field with \\u0000"
rc=0; printf '[{"role":"user","content":"a\\u0000b"}]\n' | "$BIN" tokenize "${TK[@]}" --jsonl --chat >/dev/null 2>err.txt || rc=$?
[[ $rc -eq 1 ]] && grep -q 'stdin:1: .*NUL' err.txt || fail "chat content with NUL: rc $rc $(cat err.txt)"

# bad lines: stdin:LINE, exit 1, the good lines before it were written
bad_line() { # INPUT LINE [FLAGS...]
    local in=$1 line=$2 rc=0
    shift 2
    printf "$in" | "$BIN" tokenize "${TK[@]}" --jsonl "$@" >out.txt 2>err.txt || rc=$?
    [[ $rc -eq 1 ]] || fail "input $(printf '%q' "$in"): exit $rc, want 1"
    grep -q "stdin:$line:" err.txt || fail "input $(printf '%q' "$in"): no stdin:$line: in $(cat err.txt)"
    [[ $(wc -l <out.txt) -eq $((line - 1)) ]] || fail "input $(printf '%q' "$in"): $(wc -l <out.txt) output lines"
}
bad_line '"ab"\n5\n' 2
bad_line '"ab"\n"unterminated\n' 2
bad_line '"ab"\n\xff\xfe\n' 2
bad_line '"\xff"\n' 1
bad_line '"ab"\n{"a":1}\n' 2
bad_line '"ab"\nnull\n' 2
bad_line '"ab"\n"\\ud800"\n' 2
bad_line '{"q":"x"}\n{"r":"y"}\n' 2 --field q
bad_line '{"q":"x"}\n{"q":5}\n' 2 --field q
bad_line '[{"role":"user","content":"hi"}]\n[{"role":"wizard","content":"x"}]\n' 2 --chat
bad_line '[{"role":"user","content":"hi"}]\n[]\n' 2 --chat
bad_line '[{"role":"user","content":"hi"}]\n[1]\n' 2 --chat
/usr/bin/python3 -c "print('[' * 100000 + ']' * 100000)" >deep.txt
rc=0; "$BIN" tokenize "${TK[@]}" --jsonl <deep.txt >/dev/null 2>err.txt || rc=$?
[[ $rc -eq 1 ]] || fail "deeply nested line: exit $rc"

# a 2 MB line of one character class encodes and round-trips (Qwen2.5: BPE on one
# 2 MB pre-tokenizer piece)
/usr/bin/python3 -c "import json; print(json.dumps('a' * 2000000))" | "$BIN" tokenize --jsonl >long.txt
"$BIN" detokenize --jsonl <long.txt | /usr/bin/python3 -c "import json, sys; assert json.loads(sys.stdin.readline()) == 'a' * 2000000" ||
    fail "2 MB line round trip"

# detokenize: malformed id lists are usage errors, never a crash
for ids in "-1" "99999999999999999999" "2147483648" "1,,2" "1,a" "[" "[1,2,]" "0x10" "1e3"; do
    rc=0; "$BIN" detokenize "${TK[@]}" -- "$ids" >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 1 || $rc -eq 2 ]] || fail "detokenize '$ids': exit $rc"
done
rc=0; printf '[1,2]\n[1,-5]\n' | "$BIN" detokenize "${TK[@]}" --jsonl >out.txt 2>err.txt || rc=$?
[[ $rc -ne 0 ]] && grep -q "stdin:2:" err.txt || fail "detokenize --jsonl bad line: rc $rc $(cat err.txt)"
echo "it_harden_tokenizer: OK"
