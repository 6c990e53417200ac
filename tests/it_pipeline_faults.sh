#!/usr/bin/env bash
# it_pipeline_faults — the reliability contract with real processes:
#  1. kill -9 a reward worker, then the generator, in the middle of a GRPO run: the launcher
#     restarts them, the run completes, every step trains on exactly batch_size distinct
#     groups (no duplicate applied), and every broker job got exactly one result;
#  2. kill -9 the trainer after a checkpoint: the launcher stops, `srlm run --resume`
#     continues from that checkpoint with the same data position, and the final
#     parameters and optimizer state are bit-identical to an uninterrupted run.
source "$SRLM_SOURCE_DIR/tests/pipeline_common.sh"
make_model
STEPS=5
STAGES='[{"type": "grpo", "steps": '$STEPS', "batch_size": 2, "group_size": 4, "max_new_tokens": 24, "lr": 1e-3}]'

# ---- 1. worker and generator crashes
RUN="$T/crash"
write_config "$T/crash.json" "$STAGES"
start_run "$T/crash.json" --run-dir "$RUN"
wait_lines "$RUN/metrics.jsonl" 1 120
W=$(role_pid reward-math-0); [ -n "$W" ] || fail "no reward-math pid"
kill -KILL "$W"
wait_lines "$RUN/metrics.jsonl" 2 120
G=$(role_pid generator); [ -n "$G" ] || fail "no generator pid"
kill -KILL "$G"
wait "$LPID" || fail "launcher exited non-zero after worker/generator crashes: $(tail -n 5 "$T/run.out")"
grep -q "reward-math-0 (pid $W) stopped" "$T/run.out" || fail "worker death not noticed"
grep -q "generator (pid $G) stopped" "$T/run.out" || fail "generator death not noticed"
[ "$(grep -c 'started generator' "$T/run.out")" -ge 2 ] || fail "generator not restarted"
check_metrics "$RUN" $STEPS
python3 - "$RUN/metrics.jsonl" "$STEPS" <<'PY' || fail "exactly-once check: $(cat "$RUN/metrics.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = int(sys.argv[2])
assert [r["step"] for r in rows] == list(range(1, steps + 1)), "steps"
assert all(r["groups"] == 2 and r["groups_dropped"] == 0 for r in rows), "groups per step"
assert rows[-1]["groups_consumed"] == 2 * steps, "groups consumed"
PY
check_broker_counts "$RUN"

# ---- 2. deterministic resume after kill -9 of the trainer
A="$T/a"; B="$T/b"
# an SFT stage first so the parameters move (a tiny random model rarely earns a reward, and
# GRPO groups whose rewards are all equal have zero advantage); the kill lands in GRPO
write_config "$T/det.json" '[{"type": "sft", "steps": 2, "batch_size": 4, "lr": 1e-3, "sources": "synth-arith"},
  {"type": "grpo", "steps": 3, "batch_size": 2, "group_size": 4, "max_new_tokens": 24, "lr": 1e-3}]'
timeout 300 "$SRLM_BIN" run --quiet "$T/det.json" --run-dir "$A" > "$T/a.out" 2>&1 || { RUN=$A; fail "uninterrupted run"; }
RUN="$B"
start_run "$T/det.json" --run-dir "$B"
wait_lines "$B/metrics.jsonl" 3 120
TR=$(role_pid trainer); [ -n "$TR" ] || fail "no trainer pid"
kill -KILL "$TR"
if wait "$LPID"; then fail "launcher exited 0 after the trainer was killed"; fi
grep -q -- "--resume" "$T/run.out" || fail "no resume hint after trainer crash"
LAST=$(ls "$B/checkpoints" | sed -n 's/^step_\([0-9]*\)$/\1/p' | sort -n | tail -n 1)
[ -n "$LAST" ] && [ "$LAST" -lt "$STEPS" ] || fail "trainer was not killed mid-run (last checkpoint $LAST)"
timeout 300 "$SRLM_BIN" run --quiet --resume "$B" > "$T/resume.out" 2>&1 || { cat "$T/resume.out"; fail "resume"; }
grep -q "resuming from .*step_$LAST" "$B/logs/trainer.log" || fail "trainer did not resume from step_$LAST"
for f in model.safetensors optimizer.safetensors; do
    [ -f "$A/checkpoints/step_$STEPS/$f" ] || fail "uninterrupted run lacks $f"
    cmp -s "$A/checkpoints/step_$STEPS/$f" "$B/checkpoints/step_$STEPS/$f" || fail "$f differs after resume (not bit-identical)"
done
# same data position: the resumed steps saw the same groups and rewards
python3 - "$A/metrics.jsonl" "$B/metrics.jsonl" <<'PY' || fail "resumed metrics differ"
import json, sys
a = {r["step"]: r for r in map(json.loads, open(sys.argv[1]))}
b = {}
for r in map(json.loads, open(sys.argv[2])):
    b[r["step"]] = r          # the resumed run's lines win
for s in a:
    for k in ("reward_mean", "groups_consumed", "data_position", "loss", "grad_norm"):
        assert a[s].get(k) == b[s].get(k), (s, k, a[s].get(k), b[s].get(k))
PY
echo "it_pipeline_faults: OK"
