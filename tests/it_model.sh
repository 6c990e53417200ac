#!/bin/bash
# it_model.sh — CLI round trip of the model commands: init (tiny, byte tokenizer),
# forward (.npy), generate (greedy reproducibility, --json, group of 3, --chat).
set -euo pipefail
BIN=${SRLM_BIN:?}
T=$(mktemp -d /tmp/srlm_it_model.XXXXXX)
trap 'rm -rf "$T"' EXIT
CFG="${SRLM_SOURCE_DIR:?}/configs/models/tiny-qwen2.json"
"$BIN" init --config "$CFG" --out "$T/m" --seed 5 --tokenizer bytes
for f in config.json model.safetensors generation_config.json tokenizer.json; do
  test -s "$T/m/$f" || { echo "missing $f"; exit 1; }
done
"$BIN" forward --model "$T/m" --ids 72,101,108 --out "$T/l.npy"
# .npy header: magic, version 1.0, shape (3, 320)
head -c 6 "$T/l.npy" | od -c | grep -q "N   U   M   P   Y"
grep -a -q "'shape': (3, 320)" "$T/l.npy"
test "$(stat -c %s "$T/l.npy")" -eq $((128 + 3 * 320 * 4))
# greedy generation is deterministic and its --json has ids/logprobs/finish_reason
a=$("$BIN" generate --model "$T/m" --prompt "Hello" --greedy --max-new-tokens 6 --json)
b=$("$BIN" generate --model "$T/m" --ids 72,101,108,108,111 --greedy --max-new-tokens 6 --json)
[ "$(echo "$a" | sed 's/"text":"[^"]*",//')" = "$(echo "$b" | sed 's/"text":"[^"]*",//')" ] || { echo "greedy differs: $a / $b"; exit 1; }
echo "$a" | grep -q '"finish_reason":"length"'
echo "$a" | grep -q '"logprobs":\['
n=$("$BIN" generate --model "$T/m" --prompt "Hi" --chat -n 3 --temperature 0.9 --top-p 0.9 --top-k 40 --seed 2 --max-new-tokens 5 --json | wc -l)
[ "$n" -eq 3 ] || { echo "expected 3 completions, got $n"; exit 1; }
# errors: usage → 2, bad model dir → 1
set +e
"$BIN" generate --model "$T/m" > /dev/null 2>&1; [ $? -eq 2 ] || { echo "usage error not 2"; exit 1; }
"$BIN" forward --model "$T/nope" --ids 1 > /dev/null 2>&1; [ $? -eq 1 ] || { echo "missing model not 1"; exit 1; }
"$BIN" forward --model "$T/m" --ids 1,999 > /dev/null 2>&1; [ $? -eq 1 ] || { echo "bad id not 1"; exit 1; }
echo "it_model OK"
