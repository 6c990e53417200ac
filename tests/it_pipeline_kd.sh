#!/usr/bin/env bash
# it_pipeline_kd — kd → grpo through `srlm run`: logit-level KD from a teacher model loaded
# in the trainer, then from a teacher process (`srlm generator --role teacher`, top-k
# log-probabilities over the wire), then sequence-level KD (SFT on traces), then GRPO.
# Also validates the example configs in configs/ with `srlm run --check`.
source "$SRLM_SOURCE_DIR/tests/pipeline_common.sh"
make_model
"$SRLM_BIN" init --config "$SRLM_SOURCE_DIR/configs/models/tiny-qwen2.json" --out "$T/teacher" --seed 2 \
    --tokenizer bytes --threads 1 >/dev/null 2>&1 || fail "srlm init teacher"
RUN="$T/run"
write_config "$T/cfg.json" '[
  {"type": "kd", "name": "kd-local", "kd_mode": "logit", "teacher": "'"$T/teacher"'", "steps": 2, "batch_size": 4, "lr": 1e-3, "sources": "synth-arith"},
  {"type": "kd", "name": "kd-service", "kd_mode": "logit", "teacher": "'"$T/teacher"'", "teacher_service": true,
   "teacher_top_k": 8, "kd_loss": "jsd", "steps": 2, "batch_size": 4, "lr": 1e-3, "sources": "synth-arith"},
  {"type": "kd", "name": "kd-seq", "steps": 1, "batch_size": 4, "lr": 1e-3, "sources": "synth-arith"},
  {"type": "grpo", "steps": 2, "batch_size": 2, "group_size": 4, "max_new_tokens": 16, "lr": 1e-4, "sources": "synth-arith",
   "kl_beta": 0.04, "aggregation": "dr_grpo", "advantage": "mean"}]'
timeout 300 "$SRLM_BIN" run --quiet "$T/cfg.json" --run-dir "$RUN" > "$T/run.out" 2>&1 || { cat "$T/run.out"; fail "srlm run"; }
check_metrics "$RUN" 7
grep -q "started teacher" "$T/run.out" || fail "teacher process not started"
grep -q "teacher up" "$RUN/logs/teacher.log" || fail "teacher did not serve"
for s in kd-local kd-service kd-seq grpo; do grep -q "\"stage\":\"$s\"" "$RUN/metrics.jsonl" || fail "no $s steps"; done
python3 - "$RUN/metrics.jsonl" <<'PY' || fail "KD losses not finite/positive"
import json, math, sys
for r in map(json.loads, open(sys.argv[1])):
    if r["stage_type"] == "kd":
        assert math.isfinite(r["loss"]) and r["loss"] > 0, r
PY
"$SRLM_BIN" generate --model "$RUN/checkpoints/step_7" --prompt "3+4=" --max-new-tokens 4 > /dev/null 2>&1 || fail "generate"
for c in sft-grpo kd-grpo kd-seq-grpo compose-grpo; do
    "$SRLM_BIN" run --check "$SRLM_SOURCE_DIR/configs/$c.json" > /dev/null || fail "configs/$c.json does not validate"
done
echo "it_pipeline_kd: OK"
