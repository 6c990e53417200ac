#!/usr/bin/env bash
# it_pipeline_ipc — `srlm run`: SFT then a 3-step GRPO on synthetic math and code problems over
# ipc://, with real processes (dataset server, broker, reward-math, reward-code, generator,
# trainer). Checks metrics.jsonl fields, per-job result counts, checkpoints loadable by
# `srlm generate`, and --resume of a finished run.
source "$SRLM_SOURCE_DIR/tests/pipeline_common.sh"
make_model
RUN="$T/run"
write_config "$T/cfg.json" '[{"type": "sft", "steps": 2, "batch_size": 4, "lr": 1e-3},
  {"type": "grpo", "steps": 3, "batch_size": 2, "group_size": 4, "max_new_tokens": 24, "lr": 1e-4}]'
timeout 300 "$SRLM_BIN" run --quiet "$T/cfg.json" --run-dir "$RUN" > "$T/run.out" 2>&1 || { cat "$T/run.out"; fail "srlm run"; }
check_metrics "$RUN" 5
# a normal end is not a crash: no role is restarted (the generator may log that it finished)
if grep -q 'restarting' "$T/run.out"; then cat "$T/run.out"; fail "a role was restarted in a run without faults"; fi
[ "$(grep -c '"stage":"grpo"' "$RUN/metrics.jsonl")" -eq 3 ] || fail "want 3 GRPO steps"
grep '"stage":"grpo"' "$RUN/metrics.jsonl" | grep -q "\"workers\":$((1 + CODE_WORKERS))" || fail "GRPO metrics do not report the workers"
check_broker_counts "$RUN"
[ -f "$RUN/config.json" ] || fail "config copy"
for d in step_1 step_2 step_5; do [ -f "$RUN/checkpoints/$d/trainer_state.json" ] || fail "checkpoint $d"; done
"$SRLM_BIN" generate --model "$RUN/checkpoints/step_5" --prompt "1+1=" --max-new-tokens 4 > "$T/gen.out" 2>&1 \
    || { cat "$T/gen.out"; fail "srlm generate on the final checkpoint"; }
# a second `run` into the same directory is refused with a pointer to --resume
if "$SRLM_BIN" run --quiet "$T/cfg.json" --run-dir "$RUN" > "$T/again.out" 2>&1; then fail "second run into a used dir"; fi
grep -q -- "--resume" "$T/again.out" || fail "no --resume hint"
# resume of a finished run: nothing left to do, exits 0
timeout 120 "$SRLM_BIN" run --quiet --resume "$RUN" > "$T/resume.out" 2>&1 || { cat "$T/resume.out"; fail "resume of a finished run"; }
[ "$(wc -l < "$RUN/metrics.jsonl")" -eq 5 ] || fail "resume of a finished run trained again"
# config errors name the key path
sed 's/"lr": 1e-3/"lrr": 1e-3/' "$T/cfg.json" > "$T/bad.json"
if "$SRLM_BIN" run --quiet "$T/bad.json" --run-dir "$T/bad" > "$T/bad.out" 2>&1; then fail "unknown key accepted"; fi
grep -q 'stages\[0\].lrr: unknown key' "$T/bad.out" || { cat "$T/bad.out"; fail "unknown key message"; }
echo "it_pipeline_ipc: OK"
