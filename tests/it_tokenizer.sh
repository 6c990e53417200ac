#!/usr/bin/env bash
# it_tokenizer.sh — the tokenizer CLI: tokenize (text, --jsonl, --field, --chat, --mask,
# --no-special), detokenize, tokenizer init-bytes / info, and usage errors.
set -euo pipefail
SRLM=${SRLM_BIN:?SRLM_BIN must point to the srlm binary}
SRC=${SRLM_SOURCE_DIR:?}
TMP=$(mktemp -d /tmp/srlm_it_tok.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
eq() { [ "$1" == "$2" ] || fail "$3: got '$1', want '$2'"; }

eq "$("$SRLM" tokenize "Hello world")" "[9707,1879]" "tokenize"
eq "$("$SRLM" tokenize --tokenizer "$SRC/tokenizers/qwen2.5" " Hello world")" "[21927,1879]" "tokenize --tokenizer"
eq "$("$SRLM" tokenize "<|im_end|>")" "[151645]" "special parsed"
eq "$("$SRLM" tokenize --no-special "<|im_end|>")" "[27,91,318,6213,91,29]" "--no-special"
eq "$("$SRLM" tokenize --chat "What is the capital of France?")" \
   "[151644,8948,198,2610,525,1207,16948,11,3465,553,54364,14817,13,1446,525,264,10950,17847,13,151645,198,151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198]" "--chat"
out=$("$SRLM" tokenize --chat --mask '[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]')
case "$out" in *'"mask":['*'1,1,0]}') ;; *) fail "--mask: $out" ;; esac
printf '"Hello world"\n" Hello world"\n' | "$SRLM" tokenize --jsonl > "$TMP/out"
eq "$(cat "$TMP/out")" $'[9707,1879]\n[21927,1879]' "--jsonl"
# --field on real data: one output line per record
zcat "$SRC/datasets/data/gsm8k/test.jsonl.gz" > "$TMP/all.jsonl"
head -50 "$TMP/all.jsonl" > "$TMP/in.jsonl"
"$SRLM" tokenize --jsonl --field question < "$TMP/in.jsonl" > "$TMP/q"
eq "$(wc -l < "$TMP/q" | tr -d ' ')" "50" "--field lines"
# detokenize back: each array line -> JSON string equal to the question
python3 -c 'import sys,json; [print(json.dumps(json.loads(l)["question"])) for l in sys.stdin]' < "$TMP/in.jsonl" > "$TMP/want"
"$SRLM" detokenize --jsonl < "$TMP/q" | python3 -c 'import sys,json; [print(json.dumps(json.loads(l))) for l in sys.stdin]' > "$TMP/got"
cmp -s "$TMP/got" "$TMP/want" || fail "detokenize --jsonl round trip"
eq "$("$SRLM" detokenize 9707,1879)" "Hello world" "detokenize"
eq "$("$SRLM" detokenize '[151644, 8948, 151645]' --skip-special)" "system" "--skip-special"
# bad input: non-zero exit, message names the line
printf '"ok"\nnot json\n' | "$SRLM" tokenize --jsonl > /dev/null 2> "$TMP/err" && fail "bad jsonl accepted"
grep -q "stdin:2" "$TMP/err" || fail "error does not name the line: $(cat "$TMP/err")"
set +e
"$SRLM" tokenize > /dev/null 2>&1; eq "$?" "2" "missing TEXT is a usage error"
"$SRLM" detokenize abc > /dev/null 2>&1; eq "$?" "2" "bad IDS is a usage error"
"$SRLM" tokenize --tokenizer "$TMP/nowhere" x > /dev/null 2> "$TMP/err"; eq "$?" "1" "missing tokenizer"
grep -q "nowhere" "$TMP/err" || fail "error does not name the path"
set -e
"$SRLM" tokenize --help | grep -q -- "--jsonl" || fail "--help"
# byte-level vocabulary
"$SRLM" tokenizer init-bytes --out "$TMP/bytes" > /dev/null
eq "$("$SRLM" tokenize --tokenizer "$TMP/bytes" "hé<|im_end|>")" "[104,195,169,258]" "byte-level"
eq "$("$SRLM" detokenize --tokenizer "$TMP/bytes" 104,195,169,258)" "hé<|im_end|>" "byte-level detokenize"
eq "$("$SRLM" tokenizer info --tokenizer "$TMP/bytes")" \
   '{"vocab_size":259,"eos_id":258,"pad_id":256,"im_start_id":257,"im_end_id":258}' "info"
echo "it_tokenizer: OK"
