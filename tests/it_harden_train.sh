#!/bin/bash
# it_harden_train.sh — `srlm train` on hostile input: a diverging run stops with an error at
# the first non-finite loss / gradient norm without writing NaN anywhere (the last good
# checkpoint stays), non-finite flags, JSONL edge cases (empty completion, truncation,
# prompt-only rows, CRLF, BOM, invalid UTF-8), and kill -9 at random points of a run that
# checkpoints every step: the newest checkpoint-N always loads, --resume continues, and
# the half-written saves of killed runs are removed.
set -euo pipefail
BIN=${SRLM_BIN:?}
T=$(mktemp -d /tmp/srlm_it_harden_train.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
fail() { echo "FAIL: $*"; exit 1; }
"$BIN" init --config "${SRLM_SOURCE_DIR:?}/configs/models/tiny-qwen2.json" --out "$T/m" --seed 1 --tokenizer bytes 2>/dev/null
printf '{"prompt": "a b c ", "completion": "d e f"}\n{"prompt": "x", "completion": "y"}\n' > "$T/d.jsonl"
# diverging run: lr 1e30 → step 2 has a NaN loss → exit 1, no final model, checkpoint-1 intact
set +e
e=$("$BIN" train sft --model "$T/m" --data "$T/d.jsonl" --out "$T/nan" --lr 1e30 --steps 6 --save-every 1 --threads 1 2>&1); rc=$?
set -e
[ $rc -eq 1 ] || fail "diverging run exit $rc"
echo "$e" | grep -q 'step 2: non-finite loss' || fail "no non-finite error: $e"
test -e "$T/nan/model.safetensors" && fail "a diverged run wrote a final model"
test -e "$T/nan/checkpoint-2" && fail "a NaN step was checkpointed"
grep -q '"step": 1' "$T/nan/checkpoint-1/trainer_state.json" || fail "checkpoint-1 step"
[ "$(wc -l < "$T/nan/metrics.jsonl")" -eq 1 ] || fail "metrics.jsonl should hold only the good step"
grep -qi nan "$T/nan/metrics.jsonl" && fail "NaN in metrics.jsonl"
# checkpoint-1 holds finite but huge weights (lr 1e30): generating from it is an error, not NaN text
set +e; e=$("$BIN" generate --model "$T/nan/checkpoint-1" --prompt "a" --greedy --max-new-tokens 2 2>&1); rc=$?; set -e
[ $rc -eq 1 ] && echo "$e" | grep -q 'non-finite logits' || fail "generate from overflowing weights: $rc $e"
# non-finite numeric flags are usage errors
for f in "--lr nan" "--lr inf" "--max-grad-norm nan" "--lora-alpha inf"; do
  set +e; "$BIN" train sft --model "$T/m" --data "$T/d.jsonl" --out "$T/x" $f >/dev/null 2>&1; rc=$?; set -e
  [ $rc -eq 2 ] || fail "train $f exit $rc"
done
# JSONL edge cases (documented in docs/training.md)
data_case() { # WANT_RC PATTERN DATA
  printf "$3" > "$T/e.jsonl"; rm -rf "$T/eo"
  set +e; e=$("$BIN" train sft --model "$T/m" --data "$T/e.jsonl" --out "$T/eo" --steps 1 --batch-size 2 --max-seq-len 16 --threads 1 2>&1); rc=$?; set -e
  [ $rc -eq "$1" ] || fail "data $3: exit $rc: $e"
  [ -z "$2" ] || echo "$e" | grep -q -- "$2" || fail "data $3: expected '$2' in: $e"
}
data_case 0 '' '{"prompt":"abc","completion":""}\n'                          # target = EOS only
data_case 0 '1 rows truncated to --max-seq-len 16' '{"prompt":"x","completion":"abcdefghijklmnopqrstuvwxyz"}\n'
data_case 1 'e.jsonl: no usable training rows' '{"prompt":"abcdefghijklmnopqrstuvwxyz","completion":"zz"}\n'
data_case 1 'e.jsonl:2: "prompt" and "completion" must both be strings' '{"prompt":"x","completion":"y"}\n{"prompt":"abc"}\n'
data_case 0 '' '{"prompt":"abc","completion":"d"}\r\n{"prompt":"x","completion":"y"}\r\n'
data_case 0 '' '\xef\xbb\xbf{"prompt":"abc","completion":"d"}\n'
data_case 1 'e.jsonl:1: not a JSON object: unable to decode byte 0xff' '{"prompt":"ab\xff\xfe","completion":"d"}\n'
data_case 1 'e.jsonl:1: not a JSON object' '[1,2]\n'
data_case 1 'e.jsonl: no usable training rows' ''
# kill -9 at random points of a run that saves every step
for i in $(seq 1 20); do printf '{"prompt": "question %d ", "completion": "answer %d"}\n' "$i" "$i"; done > "$T/k.jsonl"
RANDOM=7
res=()
newest() { ls -d "$T"/ko/checkpoint-* 2>/dev/null | grep -E 'checkpoint-[0-9]+$' | sort -t- -k2 -n | tail -1; }
for r in 1 2 3; do
  "$BIN" train sft --model "$T/m" --data "$T/k.jsonl" --out "$T/ko" --steps 100000 --save-every 1 --batch-size 2 \
    --threads 1 --seed 3 "${res[@]}" >/dev/null 2>&1 & p=$!
  sleep "0.$((RANDOM % 7 + 3))$((RANDOM % 10))"
  for w in $(seq 1 100); do [ -n "$(newest)" ] && break; sleep 0.1; done # at least one checkpoint
  sleep "0.$((RANDOM % 10))"
  kill -9 $p; wait $p 2>/dev/null || true
  last=$(newest)
  [ -n "$last" ] || fail "round $r: no checkpoint"
  "$BIN" forward --model "$last" --ids 1,2 >/dev/null 2>&1 || fail "round $r: $last does not load"
  res=(--resume "$last")
done
n=$(basename "$(newest)" | cut -d- -f2)
"$BIN" train sft --model "$T/m" --data "$T/k.jsonl" --out "$T/ko" --steps $((n + 2)) --batch-size 2 --threads 1 --seed 3 \
  "${res[@]}" 2>"$T/err" || { cat "$T/err"; fail "resume after kills"; }
grep -q "\"step\": $((n + 2))" "$T/ko/trainer_state.json" || fail "resumed run did not finish"
ls -a "$T/ko" | grep -q -E '\.tmp\.|\.old\.|^\.final\.' && fail "stale partial saves left: $(ls -a "$T/ko")"
"$BIN" generate --model "$T/ko" --prompt "question 3 " --greedy --max-new-tokens 3 >/dev/null 2>&1 || fail "final model"
# a bad numeric value names its flag, whether the value is a separate argument or not
for form in "--lr abc" "--lr=abc"; do
  # shellcheck disable=SC2086
  "$BIN" train sft $form 2>"$T/err" && fail "train accepted $form"
  grep -q -- "--lr: 'abc'" "$T/err" || fail "error for $form does not name --lr: $(cat "$T/err")"
done
echo "it_harden_train: ok"
