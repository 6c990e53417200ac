#!/bin/bash
# it_harden_model.sh — the real-checkpoint path on a Qwen2.5-0.5B-Instruct-shaped directory
# (the published config.json / generation_config.json fields and the real 151,936-id vocab
# and tokenizer, but 2 layers of hidden 64 so it runs in seconds), saved as BF16 with tied
# embeddings and no lm_head.weight like the HF file; plus hostile config / safetensors /
# generation / training inputs: each one a clear error or documented behaviour.
set -euo pipefail
BIN=${SRLM_BIN:?}
SRC=${SRLM_SOURCE_DIR:?}
T=$(mktemp -d /tmp/srlm_it_harden_model.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
fail() { echo "FAIL: $*"; exit 1; }
# the real Instruct config with a small body; every other field as published
small_cfg() {
  jq '.hidden_size = 64 | .intermediate_size = 128 | .num_hidden_layers = 2 |
      .num_attention_heads = 4 | .num_key_value_heads = 2 | .max_window_layers = 2' \
    "$SRC/tokenizers/qwen2.5/config.json"
}
small_cfg > "$T/cfg.json"
"$BIN" init --config "$T/cfg.json" --out "$T/m" --seed 3 --tokenizer "$SRC/tokenizers/qwen2.5" --dtype bf16 2>/dev/null
# overwrite with the HF files verbatim (field order, transformers_version, sliding_window, ...)
cp "$T/cfg.json" "$T/m/config.json"
cp "$SRC/tokenizers/qwen2.5/generation_config.json" "$T/m/generation_config.json"
grep -a -q 'lm_head.weight' "$T/m/model.safetensors" && fail "tied BF16 file has lm_head.weight"
grep -a -q '"BF16"' "$T/m/model.safetensors" || fail "not BF16"
# newer transformers: rope_parameters instead of rope_theta
jq 'del(.rope_theta) | .rope_parameters = {"rope_type": "default", "rope_theta": 1000000.0}' "$T/cfg.json" > "$T/m2cfg.json"
mkdir "$T/m2" && cp "$T"/m/* "$T/m2/" && cp "$T/m2cfg.json" "$T/m2/config.json"
a=$("$BIN" forward --model "$T/m" --ids 9707,11,1879 2>&1) || fail "forward: $a"
b=$("$BIN" forward --model "$T/m2" --ids 9707,11,1879 2>&1) || fail "forward rope_parameters: $b"
[ "$a" = "$b" ] || fail "rope_parameters gives different logits"
jq '.rope_parameters = {"rope_type": "yarn", "factor": 4.0}' "$T/cfg.json" > "$T/m2/config.json"
e=$("$BIN" forward --model "$T/m2" --ids 1 2>&1) && fail "yarn rope accepted"
echo "$e" | grep -q 'rope_type' || fail "yarn error: $e"
# generation with the published generation_config.json defaults (sampling, top-k 20, top-p 0.8, penalty 1.1)
out=$("$BIN" generate --model "$T/m" --prompt "Hello" --chat -n 2 --max-new-tokens 4 --seed 1 --json 2>"$T/err") || fail "generate: $out"
[ "$(echo "$out" | grep -c '"finish_reason"')" -eq 2 ] || fail "generate --chat: $out"
# the chat template ends with the assistant header: <|im_start|>assistant\n = 151644, 77091, 198
first=${out%%$'\n'*}
[[ $first == *'151644,77091,198],'* ]] || fail "chat prompt ids: $out"
# LoRA SFT (1 step, short rows) on ChatML: saves a loadable model + PEFT adapter
cat > "$T/d.jsonl" <<'JSONL'
{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}
{"prompt": "2+2=", "completion": "4"}
JSONL
"$BIN" train sft --model "$T/m" --data "$T/d.jsonl" --out "$T/lo" --steps 2 --batch-size 2 --max-seq-len 32 \
  --lora-rank 4 --lora-alpha 8 --save-dtype bf16 --threads 1 --seed 1 2>"$T/err" || { cat "$T/err"; fail "LoRA SFT"; }
for f in config.json model.safetensors adapter_config.json adapter_model.safetensors tokenizer.json generation_config.json; do
  test -s "$T/lo/$f" || fail "LoRA output lacks $f"
done
grep -a -q 'lm_head.weight' "$T/lo/model.safetensors" && fail "tied LoRA save has lm_head.weight"
"$BIN" generate --model "$T/lo" --prompt "hi" --chat --greedy --max-new-tokens 2 >/dev/null 2>&1 || fail "LoRA output does not load"
# full fine-tune until the model answers "ok<|im_end|>": generation stops on <|im_end|> (151645)
"$BIN" train sft --model "$T/m" --data "$T/d.jsonl" --out "$T/o" --steps 12 --batch-size 2 --max-seq-len 32 \
  --lr 2e-2 --threads 1 --seed 1 2>"$T/err" || { cat "$T/err"; fail "SFT"; }
out=$("$BIN" generate --model "$T/o" --prompt "hi" --chat --greedy --max-new-tokens 8 --json 2>"$T/err") || fail "$out"
echo "$out" | grep -q '"finish_reason":"stop"' || fail "did not stop on <|im_end|>: $out"
echo "$out" | grep -q '151645\],"logprobs"' || fail "stop id not last: $out"
# <|endoftext|> (151643, the second generation_config eos id) stops as well
jq '.eos_token_id = [151643]' "$T/o/generation_config.json" > "$T/g" && cp "$T/g" "$T/o/generation_config.json"
out=$("$BIN" generate --model "$T/o" --prompt "hi" --chat --greedy --max-new-tokens 3 --json 2>"$T/err") || fail "$out"
echo "$out" | grep -q '"finish_reason":"length"' || fail "stopped without a stop id: $out"
# ---- hostile config.json: an error naming the file and the field, never a huge allocation
expect_err() { # DIR PATTERN: forward must exit 1 with PATTERN in the message
  local e; e=$("$BIN" forward --model "$1" --ids 1 2>&1) && fail "accepted: $2"
  echo "$e" | grep -q -- "$2" || fail "error for $2: $e"
}
mkdir "$T/h"
cfgcase() { cp "$T"/m/* "$T/h/"; jq "$1" "$T/cfg.json" > "$T/h/config.json"; expect_err "$T/h" "$2"; }
cfgcase '.hidden_size = "64"' 'hidden_size" must be an integer'
cfgcase '.hidden_size = -64' 'hidden_size" = -64 is out of range'
cfgcase '.hidden_size = 65' 'hidden_size 65 is not a multiple'
cfgcase 'del(.hidden_size)' 'required field "hidden_size" is missing'
cfgcase 'del(.num_hidden_layers)' 'required field "num_hidden_layers" is missing'
cfgcase '.num_hidden_layers = 100000' 'config.json: describes .* parameters'
cfgcase '.vocab_size = 151000' 'expected \[151000, 64\] from config.json'
cfgcase '.rope_theta = 1e308' 'rope_theta finite'
cfgcase '.use_sliding_window = true' 'use_sliding_window'
# ---- hostile safetensors
ST="$T/h/model.safetensors"
stcase() { cp "$T"/m/* "$T/h/"; "$@"; }
hdr_len() { od -An -t u8 -N 8 "$1" | tr -d ' '; }
stcase truncate -s 0 "$ST"; expect_err "$T/h" 'model.safetensors: truncated'
stcase printf '\377\377\377\377\377\377\377\377{}' > "$ST"; expect_err "$T/h" 'header length'
stcase rm "$ST"; ln -s model.safetensors "$ST"; expect_err "$T/h" 'model.safetensors: Too many levels of symbolic links'
rm "$ST"
# duplicate tensor names: JSON with the same key twice
python3 -c "
import struct,sys
h=b'{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}'
open(sys.argv[1],'wb').write(struct.pack('<Q',len(h))+h+bytes(8))" "$ST"
truncate -s 20M "$ST" # as large as the config needs, so the header is what fails
expect_err "$T/h" 'duplicate'
python3 -c "
import struct,sys
h=b'{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}'
open(sys.argv[1],'wb').write(struct.pack('<Q',len(h))+h+bytes(12))" "$ST"
truncate -s 20M "$ST"
expect_err "$T/h" 'overlap'
# NaN weights (BF16 0xffff at the start of the data buffer) are rejected, naming the tensor
cp "$T"/m/* "$T/h/"
n=$(hdr_len "$ST")
first=$(head -c $((8 + n)) "$ST" | tail -c "$n" | jq -r 'to_entries | map(select(.key != "__metadata__")) | min_by(.value.data_offsets[0]) | .key')
printf '\377\377\377\377' | dd of="$ST" bs=1 seek=$((8 + n)) conv=notrunc status=none
expect_err "$T/h" "tensor $first contains NaN or Inf"
# finite weights that overflow float32 (q/k biases of layer 0 = 3e38: the attention scores
# are Inf, softmax NaN): forward fails naming the model instead of printing NaN logits
cp "$T"/m/* "$T/h/"
python3 - "$ST" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "r+b")
n = struct.unpack("<Q", f.read(8))[0]
h = json.loads(f.read(n))
big = struct.pack("<f", 3e38)[2:]  # BF16: the high half of the float32
for name in ("model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias"):
    a, b = h[name]["data_offsets"]
    assert h[name]["dtype"] == "BF16"
    f.seek(8 + n + a)
    f.write(big * ((b - a) // 2))
PY
expect_err "$T/h" "$T/h: the logits are not finite"
# ---- hostile generation flags: usage errors (exit 2), never NaN output
gen_rc() { local want=$1; shift; set +e; "$BIN" generate --model "$T/m" --prompt hi "$@" >/dev/null 2>&1; local rc=$?; set -e
  [ $rc -eq "$want" ] || fail "generate $* exit $rc, expected $want"; }
gen_rc 2 --max-new-tokens 0
gen_rc 2 --max-new-tokens -5
gen_rc 2 --temperature 1e-45
gen_rc 2 --temperature nan
gen_rc 2 --temperature abc
gen_rc 2 --top-p 0
gen_rc 2 --top-k -3
gen_rc 2 --repetition-penalty inf
gen_rc 0 --temperature 0 --max-new-tokens 2
gen_rc 0 --temperature 1e-5 --max-new-tokens 2
gen_rc 0 --top-k 1000000 --temperature 1 --max-new-tokens 2
set +e; "$BIN" generate --model "$T/m" --ids 151936 --max-new-tokens 2 >/dev/null 2>&1; [ $? -eq 1 ] || fail "id = vocab accepted"; set -e
set +e; "$BIN" generate --model "$T/m" --ids '' --max-new-tokens 2 >/dev/null 2>&1; [ $? -eq 2 ] || fail "empty --ids"; set -e
# a tokenizer whose ids exceed config.json vocab_size: an error naming both, in generate and train
jq '.vocab_size = 9000' "$T/cfg.json" > "$T/vcfg.json"
"$BIN" init --config "$T/vcfg.json" --out "$T/v" --seed 1 --tokenizer "$SRC/tokenizers/qwen2.5" 2>/dev/null
set +e; e=$("$BIN" generate --model "$T/v" --prompt "Hello world" --greedy --max-new-tokens 2 2>&1); rc=$?; set -e
[ $rc -eq 1 ] && echo "$e" | grep -q 'outside the vocabulary \[0, 9000) of .*config.json (tokenizer and model do not match)' \
  || fail "tokenizer ids beyond vocab_size in generate: $rc $e"
printf '{"prompt": "Hello world", "completion": "ok"}\n' > "$T/v.jsonl"
set +e; e=$("$BIN" train sft --model "$T/v" --data "$T/v.jsonl" --out "$T/vo" --steps 1 2>&1); rc=$?; set -e
[ $rc -eq 1 ] && echo "$e" | grep -q 'v.jsonl:1: token id .* outside the model vocabulary \[0, 9000)' \
  || fail "tokenizer ids beyond vocab_size in train: $rc $e"
# prompt past max_position_embeddings: documented warning, still generates
jq '.max_position_embeddings = 8' "$T/cfg.json" > "$T/h/config.json"; cp "$T/m/model.safetensors" "$T/m/tokenizer.json" "$T/h/"
e=$("$BIN" generate --model "$T/h" --ids 1,2,3,4,5,6,7 --greedy --max-new-tokens 3 2>&1 >/dev/null) || fail "$e"
echo "$e" | grep -q 'exceeds max_position_embeddings' || fail "no max_position_embeddings warning: $e"
echo "it_harden_model: ok"
