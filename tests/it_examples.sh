#!/usr/bin/env bash
# it_examples.sh — the example inputs a new user runs as-is (examples/*.jsonl, referenced
# from README.md, docs/training.md, docs/datasets.md, docs/sandbox.md, docs/reward_math.md)
# stay valid: each goes through the real command of its docs and gives the documented result.
set -euo pipefail
BIN=${SRLM_BIN:?SRLM_BIN not set}
SRC=${SRLM_SOURCE_DIR:?SRLM_SOURCE_DIR not set}
T=$(mktemp -d /tmp/srlm_it_examples.XXXXXX)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"  # the sandbox uid mounts its root under SRLM_SANDBOX_DIR
export OMP_NUM_THREADS=1 SRLM_SANDBOX_DIR="$T/sbx"
mkdir -p "$SRLM_SANDBOX_DIR"
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$SRC"

# examples/train.jsonl: canonical records; SFT on them (README's commands), and an import
"$BIN" init --config configs/models/tiny-qwen2.json --out "$T/m" --tokenizer bytes >"$T/init.out" 2>&1 ||
  { cat "$T/init.out"; fail "srlm init"; }
"$BIN" train sft --model "$T/m" --data examples/train.jsonl --out "$T/sft" --steps 2 --batch-size 2 >"$T/train.out" 2>&1 ||
  { cat "$T/train.out"; fail "srlm train sft --data examples/train.jsonl"; }
[ -s "$T/sft/model.safetensors" ] || fail "train sft wrote no model"
if grep -q 'skipped' "$T/train.out"; then cat "$T/train.out"; fail "train sft skipped an example row"; fi
"$BIN" data import --db "$T/d.lmdb" --format jsonl --source example --split train examples/train.jsonl >"$T/imp.out" 2>&1 ||
  { cat "$T/imp.out"; fail "srlm data import examples/train.jsonl"; }
grep -q "imported $(wc -l < examples/train.jsonl) records" "$T/imp.out" || fail "import: $(cat "$T/imp.out")"

# examples/jobs.jsonl: code jobs; rewards 1 (PASS), 0.5 (WA: one of two asserts), 1 (HumanEval)
"$BIN" reward-code --jsonl < examples/jobs.jsonl > "$T/code.out" 2>"$T/code.err" ||
  { cat "$T/code.err"; fail "srlm reward-code --jsonl < examples/jobs.jsonl"; }
/usr/bin/python3 - "$T/code.out" <<'PY' || fail "reward-code results: $(cat "$T/code.out")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert [x["reward"] for x in r] == [1.0, 0.5, 1.0], r
assert [x["verdict"] for x in r] == ["PASS", "WA", "PASS"], r
PY

# examples/math_jobs.jsonl: math jobs; correct, wrong, correct (\frac{1}{2} = 0.5)
"$BIN" reward-math --jsonl examples/math_jobs.jsonl > "$T/math.out" 2>"$T/math.err" ||
  { cat "$T/math.err"; fail "srlm reward-math --jsonl examples/math_jobs.jsonl"; }
/usr/bin/python3 - "$T/math.out" <<'PY' || fail "reward-math results: $(cat "$T/math.out")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert [x["verdict"] for x in r] == ["correct", "wrong", "correct"], r
PY
echo "it_examples: OK"
