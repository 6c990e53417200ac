# pipeline_common.sh — helpers shared by tests/it_pipeline_*.sh (sourced, not a test).
set -euo pipefail
: "${SRLM_BIN:?SRLM_BIN must point at the srlm binary}"
: "${SRLM_SOURCE_DIR:?}"
T=$(mktemp -d /tmp/srlm_itp.XXXXXX)   # short path: ipc:// socket paths are limited to ~100 bytes
cleanup() {
    # stop only what this test started (launchers recorded in $T/pids)
    if [ -f "$T/pids" ]; then
        while read -r p; do kill -TERM "$p" 2>/dev/null || true; done < "$T/pids"
        sleep 1
        while read -r p; do kill -KILL "$p" 2>/dev/null || true; done < "$T/pids"
    fi
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "${RUN:-$T/none}"/logs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }; done >&2; exit 1; }

# role_works ROLE: 1 if `srlm ROLE --connect EP` serves (still running after 1.5 s), else 0.
role_works() {
    "$SRLM_BIN" "$1" --connect "ipc://$T/probe-$1" > "$T/probe-$1.log" 2>&1 &
    local p=$!
    sleep 1.5
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; echo 1; else echo 0; fi
}
HAVE_MATH=$(role_works reward-math)
HAVE_CODE=$(role_works reward-code)
if [ "$HAVE_MATH" != 1 ]; then
    echo "SKIP: srlm reward-math --connect does not serve yet: $(cat "$T/probe-reward-math.log")"
    exit 0
fi
CODE_WORKERS=1
CODE_IMPORT=', ["synth", "--kind", "code", "--n", "20", "--split", "train", "--seed", "2"]'
if [ "$HAVE_CODE" != 1 ]; then
    echo "NOTE: srlm reward-code --connect does not serve yet: running on math problems only"
    CODE_WORKERS=0
    CODE_IMPORT=''
fi

# A tiny random Qwen2 model with the byte-level tokenizer.
make_model() {
    "$SRLM_BIN" init --config "$SRLM_SOURCE_DIR/configs/models/tiny-qwen2.json" --out "$T/model" --seed 1 \
        --tokenizer bytes --threads 1 >/dev/null 2>&1 || fail "srlm init"
}

# write_config FILE STAGES_JSON [EXTRA_TOP_LEVEL_JSON_MEMBERS]
write_config() {
    cat > "$1" <<JSON
{
  "name": "itp",
  "model": "$T/model",
  "seed": 7,
  "threads": 1,
  "data": {"import": [["synth", "--kind", "arith", "--n", "40", "--split", "train", "--seed", "1"]$CODE_IMPORT]},
  "workers": {"math": 1, "code": $CODE_WORKERS},
  "broker": {"heartbeat_ms": 200, "liveness": 5},
  "checkpoint_every": 1,
  ${3:-}
  "stages": $2
}
JSON
}

GRPO3='[{"type": "grpo", "steps": 3, "batch_size": 2, "group_size": 4, "max_new_tokens": 24, "lr": 1e-4, "temperature": 1.0}]'

# Every metrics.jsonl line has every documented field.
check_metrics() {
    local m="$1/metrics.jsonl" n="$2"
    [ -f "$m" ] || fail "no metrics.jsonl"
    [ "$(wc -l < "$m")" -ge "$n" ] || fail "metrics.jsonl has $(wc -l < "$m") lines, want >= $n"
    for k in step stage loss reward_mean reward_std accuracy kl entropy clip_frac grad_norm lr tokens_per_s \
             rollout_latency_s queue_depth workers errors policy_version time; do
        [ "$(grep -c "\"$k\":" "$m")" -eq "$(wc -l < "$m")" ] || fail "metrics.jsonl: field $k missing on some line"
    done
}

# Every job the broker created got exactly one result (stats written at broker exit).
check_broker_counts() {
    local s="$1/broker_stats.json"
    [ -f "$s" ] || fail "no broker_stats.json"
    python3 - "$s" <<'PY' || fail "broker counts: $(cat "$s")"
import json, sys
s = json.load(open(sys.argv[1]))
done = s["results_ok"] + s["results_error"]
# jobs still queued or in flight when the run ended are not counted as results
assert done + s["queue_depth"] + s["in_flight"] == s["jobs_created"], s
assert s["groups_out"] * 0 == 0
PY
}

# Start `srlm run ARGS...` in the background; its pid goes to $T/pids and $LPID.
start_run() {
    "$SRLM_BIN" run --quiet "$@" > "$T/run.out" 2>&1 &
    LPID=$!
    echo "$LPID" >> "$T/pids"
}

# wait_lines FILE N TIMEOUT_S: wait until FILE has >= N lines
wait_lines() {
    local i=0
    while [ "$(cat "$1" 2>/dev/null | wc -l)" -lt "$2" ]; do
        sleep 0.2; i=$((i + 1))
        [ $i -lt $(($3 * 5)) ] || fail "timeout waiting for $2 lines in $1"
        kill -0 "$LPID" 2>/dev/null || [ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ] || fail "launcher exited early: $(tail -n 5 "$T/run.out")"
    done
}

# pid of a role from the launcher's "started ROLE (pid N" lines (latest start)
role_pid() { grep "started $1 (pid" "$T/run.out" | tail -n 1 | sed 's/.*(pid \([0-9]*\).*/\1/'; }
