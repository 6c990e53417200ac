#!/usr/bin/env bash
# it_study_smoke.sh — a shortened study (configs/study-smoke.json: tiny models, one
# pipeline with every stage kind, a few steps) run end to end through `srlm study`.
# Asserts that the whole chain ran: every stage wrote a loadable checkpoint, every
# evaluation scored every problem through the scorer workers, and the report, table and
# plots were written.
set -euo pipefail
BIN=${SRLM_BIN:?SRLM_BIN not set}
SRC=${SRLM_SOURCE_DIR:?SRLM_SOURCE_DIR not set}
WORK=$(mktemp -d /tmp/srlm_it_study.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export SRLM_CACHE_DIR="$WORK/cache" SRLM_DS_NOSYNC=1
fail() { echo "FAIL: $*" >&2; [ -f "$RUN/study.log" ] && tail -n 30 "$RUN/study.log" >&2; exit 1; }

RUN="$WORK/run"
cd "$SRC"
"$BIN" study configs/study-smoke.json --out "$RUN" >"$WORK/stdout.txt" 2>"$WORK/stderr.txt" ||
  { cat "$WORK/stdout.txt" "$WORK/stderr.txt" >&2; fail "srlm study exited non-zero"; }

# the table was printed and the report written
grep -q '^| pipeline | stages |' "$WORK/stdout.txt" || fail "no table on stdout"
for f in report.md results.json accuracy.svg config.json; do
  [ -s "$RUN/$f" ] || fail "missing $RUN/$f"
done
grep -q '^## Held-out accuracy' "$RUN/report.md" || fail "report.md has no accuracy section"

# every stage of every pipeline (and the teacher) wrote a checkpoint
n_stage=0
while IFS= read -r d; do
  m=$(find "$d" -name config.json -path '*model*' -o -name config.json -path '*step_*' | head -n 1)
  [ -n "$m" ] || fail "stage $d wrote no checkpoint"
  [ -s "$(dirname "$m")/model.safetensors" ] || fail "stage $d: checkpoint without model.safetensors"
  n_stage=$((n_stage + 1))
done < <(find "$RUN/pipelines" "$RUN/teacher" -maxdepth 3 -type d -name 'stage-*')
want_stages=$(/usr/bin/python3 -c "
import json,sys
c=json.load(open('configs/study-smoke.json'))
print(sum(len(p['stages']) for p in c['pipelines']) + len(c.get('teacher',{}).get('stages',[])))" 2>/dev/null || echo "")
[ -z "$want_stages" ] || [ "$n_stage" -eq "$want_stages" ] || fail "expected $want_stages stage directories, found $n_stage"
[ "$n_stage" -ge 1 ] || fail "no stage ran"

# every evaluation scored every completion through the workers, without scorer errors
n_eval=$(/usr/bin/python3 - "$RUN" <<'PY'
import json, os, sys
run = sys.argv[1]
n = 0
for root, dirs, files in os.walk(os.path.join(run, "pipelines")):
    if "summary.json" not in files:
        continue
    s = json.load(open(os.path.join(root, "summary.json")))
    want = s["n_problems"] * s["n_samples"]
    assert s["n_problems"] >= 1, root
    assert s["n_scored"] == want, f"{root}: scored {s['n_scored']} of {want}"
    assert s["n_errors"] == 0, f"{root}: {s['n_errors']} scorer errors"
    lines = [json.loads(l) for l in open(os.path.join(root, "results.jsonl"))]
    assert len(lines) == s["n_problems"], f"{root}: {len(lines)} result lines"
    for l in lines:
        assert len(l["verdicts"]) == s["n_samples"] and "error" not in l["verdicts"], root
    n += 1
print(n)
PY
) || fail "evaluation check failed"
[ "$n_eval" -ge 2 ] || fail "expected evaluations of at least two models, found $n_eval"
echo "ok: $n_stage stages, $n_eval evaluations"
