#!/bin/bash
# it_train.sh — `srlm train sft|kd` end to end on a tiny model: the three record formats,
# full fine-tune (the output loads and answers greedily), LoRA (PEFT files + merged model),
# KD with a local teacher, metrics.jsonl, and clear errors for bad input.
set -euo pipefail
BIN=${SRLM_BIN:?}
T=$(mktemp -d /tmp/srlm_it_train.XXXXXX)
trap 'rm -rf "$T"' EXIT
CFG="${SRLM_SOURCE_DIR:?}/configs/models/tiny-qwen2.json"
"$BIN" init --config "$CFG" --out "$T/m" --seed 1 --tokenizer bytes 2>/dev/null
cat > "$T/d.jsonl" <<'JSONL'
{"prompt": "What is 2+2? ", "completion": "4"}
{"prompt": "Capital of France? ", "completion": "Paris"}
{"prompt": "Color of sky? ", "completion": "blue"}
{"prompt": "Opposite of hot? ", "completion": "cold"}
{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
{"prompt_ids": [72, 105], "completion_ids": [33, 33]}
JSONL
export OMP_NUM_THREADS=1
"$BIN" train sft --model "$T/m" --data "$T/d.jsonl" --out "$T/o" --lr 3e-3 --steps 60 \
  --batch-size 3 --grad-accum 2 --threads 1 --seed 1 2>/dev/null
for f in config.json model.safetensors optimizer.safetensors trainer_state.json metrics.jsonl tokenizer.json; do
  test -s "$T/o/$f" || { echo "missing $f"; exit 1; }
done
[ "$(wc -l < "$T/o/metrics.jsonl")" -eq 60 ] || { echo "metrics.jsonl should have 60 lines"; exit 1; }
tail -1 "$T/o/metrics.jsonl" | grep -q '"step":60'
loss=$(tail -1 "$T/o/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/')
awk -v l="$loss" 'BEGIN { exit !(l < 0.5) }' || { echo "SFT did not learn: loss $loss"; exit 1; }
out=$("$BIN" generate --model "$T/o" --prompt "Capital of France? " --greedy --max-new-tokens 5 2>/dev/null)
echo "$out" | grep -q Paris || { echo "expected Paris, got: $out"; exit 1; }
# LoRA: adapters in PEFT layout next to the merged model
"$BIN" train sft --model "$T/m" --data "$T/d.jsonl" --out "$T/lo" --lr 1e-2 --steps 5 --batch-size 6 \
  --lora-rank 4 --lora-alpha 8 --lora-targets q,v,down --save-dtype bf16 --threads 1 2>/dev/null
grep -q '"peft_type": "LORA"' "$T/lo/adapter_config.json"
grep -q '"r": 4' "$T/lo/adapter_config.json"
grep -a -q 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' "$T/lo/adapter_model.safetensors"
grep -a -q '"BF16"' "$T/lo/model.safetensors"
"$BIN" generate --model "$T/lo" --prompt "x" --greedy --max-new-tokens 2 >/dev/null 2>&1
# KD from a local teacher (the SFT output)
"$BIN" train kd --model "$T/m" --teacher "$T/o" --data "$T/d.jsonl" --out "$T/k" --lr 3e-3 --steps 10 \
  --batch-size 6 --kd-loss jsd --kd-beta 0.5 --kd-temperature 1.0 --threads 1 2>/dev/null
first=$(head -1 "$T/k/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/')
last=$(tail -1 "$T/k/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || { echo "KD loss did not drop: $first -> $last"; exit 1; }
# resume: 6 steps straight == 3 steps + --resume checkpoint-3 for 3 more (bit-identical)
"$BIN" train sft --model "$T/m" --data "$T/d.jsonl" --out "$T/a" --lr 3e-3 --steps 6 --batch-size 2 \
  --grad-accum 2 --save-every 3 --seed 4 --threads 1 2>/dev/null
test -s "$T/a/checkpoint-3/optimizer.safetensors"
"$BIN" train sft --model "$T/m" --data "$T/d.jsonl" --out "$T/b" --resume "$T/a/checkpoint-3" --steps 6 \
  --batch-size 2 --grad-accum 2 --seed 4 --threads 1 2>/dev/null
[ "$(sha256sum < "$T/a/model.safetensors")" = "$(sha256sum < "$T/b/model.safetensors")" ] || { echo "resume differs"; exit 1; }
[ "$(wc -l < "$T/b/metrics.jsonl")" -eq 3 ] || { echo "resumed run should log 3 steps"; exit 1; }
# errors: bad record → 1 naming file:line; missing flags / bad mode → 2
echo '{"prompt": "a", "completion": "b"}' > "$T/bad.jsonl"
echo '{"prompt": 3, "completion": "b"}' >> "$T/bad.jsonl"
set +e
err=$("$BIN" train sft --model "$T/m" --data "$T/bad.jsonl" --out "$T/x" 2>&1); rc=$?
[ $rc -eq 1 ] || { echo "bad record: rc $rc"; exit 1; }
echo "$err" | grep -q 'bad.jsonl:2' || { echo "error does not name the line: $err"; exit 1; }
echo '{"prompt_ids": [1, 99999], "completion_ids": [2]}' > "$T/bad2.jsonl"
"$BIN" train sft --model "$T/m" --data "$T/bad2.jsonl" --out "$T/x" >/dev/null 2>&1; [ $? -eq 1 ] || { echo "bad id not 1"; exit 1; }
"$BIN" train sft --model "$T/m" --out "$T/x" >/dev/null 2>&1; [ $? -eq 2 ] || { echo "missing --data not 2"; exit 1; }
"$BIN" train dpo --model "$T/m" >/dev/null 2>&1; [ $? -eq 2 ] || { echo "bad mode not 2"; exit 1; }
"$BIN" train kd --model "$T/m" --data "$T/d.jsonl" --out "$T/x" >/dev/null 2>&1; [ $? -eq 2 ] || { echo "kd without teacher not 2"; exit 1; }
"$BIN" train sft --help | grep -q -- --lora-targets
echo "it_train: ok"
