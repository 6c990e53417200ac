#!/usr/bin/env bash
# it_pipeline_tcp — the docker-compose topology on tcp loopback: every role is started by hand
# (as the compose services are) and talks over tcp://127.0.0.1; a 3-step GRPO on synthetic
# math and code problems completes; metrics and checkpoints as over ipc. Also checks that
# deploy/docker-compose.yml is valid (`docker-compose config`) when docker-compose exists.
source "$SRLM_SOURCE_DIR/tests/pipeline_common.sh"
make_model
RUN="$T/run"
mkdir -p "$RUN/logs"
P=$(( 20000 + ($$ * 7 + RANDOM) % 30000 ))
write_config "$RUN/config.json" "$GRPO3" "\"endpoints\": {\"transport\": \"tcp\", \"host\": \"127.0.0.1\", \"port_base\": $P},"
DB="$RUN/data.lmdb"
"$SRLM_BIN" data synth --db "$DB" --kind arith --n 40 --split train --seed 1 >/dev/null 2>&1 || fail "synth arith"
if [ "$CODE_WORKERS" = 1 ]; then
    "$SRLM_BIN" data synth --db "$DB" --kind code --n 20 --split train --seed 2 >/dev/null 2>&1 || fail "synth code"
fi
start_bg() { local name=$1; shift; "$SRLM_BIN" "$@" > "$RUN/logs/$name.log" 2>&1 & echo $! >> "$T/pids"; }
start_bg dataset dataset serve --db "$DB" --bind "tcp://127.0.0.1:$P"
start_bg broker broker --groups "tcp://127.0.0.1:$((P+1))" --workers "tcp://127.0.0.1:$((P+2))" \
    --scored "tcp://127.0.0.1:$((P+3))" --heartbeat-ms 200 --stats "$RUN/broker_stats.json"
SRLM_HEARTBEAT_MS=200 start_bg reward-math-0 reward-math --connect "tcp://127.0.0.1:$((P+2))"
[ "$CODE_WORKERS" = 1 ] && SRLM_HEARTBEAT_MS=200 start_bg reward-code-0 reward-code --connect "tcp://127.0.0.1:$((P+2))"
start_bg generator generator --config "$RUN/config.json" --run-dir "$RUN"
timeout 300 "$SRLM_BIN" trainer --config "$RUN/config.json" --run-dir "$RUN" > "$RUN/logs/trainer.log" 2>&1 || fail "trainer"
# stop the services with SIGTERM: each must exit 0
while read -r p; do kill -TERM "$p" 2>/dev/null || true; done < "$T/pids"
while read -r p; do wait "$p" || fail "a service did not exit 0 on SIGTERM (pid $p)"; done < "$T/pids"
: > "$T/pids"
check_metrics "$RUN" 3
check_broker_counts "$RUN"
grep -q "\"workers\":$((1 + CODE_WORKERS))" "$RUN/metrics.jsonl" || fail "GRPO metrics do not report the workers"
"$SRLM_BIN" generate --model "$RUN/checkpoints/step_3" --prompt "2+2=" --max-new-tokens 4 > "$T/gen.out" 2>&1 \
    || { cat "$T/gen.out"; fail "srlm generate on the final checkpoint"; }
if command -v docker-compose >/dev/null 2>&1; then
    (cd "$SRLM_SOURCE_DIR/deploy" && docker-compose -f docker-compose.yml config -q) > "$T/compose.out" 2>&1 \
        || { cat "$T/compose.out"; fail "docker-compose config"; }
    (cd "$SRLM_SOURCE_DIR/deploy" && docker-compose -f docker-compose.yml config --services) | sort > "$T/services"
    for s in dataset broker reward-math reward-code generator trainer; do
        grep -qx "$s" "$T/services" || fail "compose service $s missing"
    done
else
    echo "docker-compose not installed: compose validation skipped"
fi
echo "it_pipeline_tcp: OK"
