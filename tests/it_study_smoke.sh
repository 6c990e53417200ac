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
grep -q '^| sft | base → sft |' "$RUN/report.md" || fail "report.md has no paired stage effect for base -> sft"

# every stage of every pipeline (and the teacher) wrote a checkpoint
n_stage=0
while IFS= read -r d; do
  m=$(find "$d" -name config.json -path '*model*' -o -name config.json -path '*step_*' | head -n 1)
  [ -n "$m" ] || fail "stage $d wrote no checkpoint"
  [ -s "$(dirname "$m")/model.safetensors" ] || fail "stage $d: checkpoint without model.safetensors"
  n_stage=$((n_stage + 1))
done < <(find "$RUN/pipelines" "$RUN/teacher" "$RUN/base" -maxdepth 3 -type d -name 'stage-*')
want_stages=$(/usr/bin/python3 -c "
import json,sys
c=json.load(open('configs/study-smoke.json'))
# a stage prefix shared by two pipelines is trained once
pre={tuple(p['stages'][:i+1]) for p in c['pipelines'] for i in range(len(p['stages']))}
print(len(pre) + len(c.get('teacher',{}).get('stages',[])) + len(c.get('base',{}).get('stages',[])))" 2>/dev/null || echo "")
[ -z "$want_stages" ] || [ "$n_stage" -eq "$want_stages" ] || fail "expected $want_stages stage directories, found $n_stage"
[ "$n_stage" -ge 1 ] || fail "no stage ran"

# the base stages ran once, before the pipelines, and every pipeline starts from their model
[ -d "$RUN/base/stage-1-instruct" ] || fail "the base stage did not run"
grep -q 'the `base` row: the student after the base stages instruct' "$RUN/report.md" ||
  fail "report.md does not name the base stages"
grep -q "base/stage-1-instruct/model" "$RUN/pipelines/sft/seed-1/stage-1-sft/stage.log" ||
  fail "the sft stage did not start from the base model"
jq -e '.base.stages == "instruct" and (.base.model | test("/base/stage-1-instruct/model"))' "$RUN/results.json" >/dev/null ||
  fail "results.json: base model and stages"

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

# progress lines carry the elapsed time [+mm:ss]; the first one counts the pipelines
grep -q '^\[+[0-9][0-9]:[0-9][0-9]\] study study-smoke: 3 pipelines ×' "$WORK/stdout.txt" || fail "no [+mm:ss] header line"
# the config as run is printed with sane reals (lr 3e-3, not 0.0030000000000000001)
grep -q '"lr": 0.003' "$RUN/report.md" && grep -q '"lr": 0.003' "$RUN/config.json" || fail "config as run: reals"
if grep -q '000000000[0-9]' "$RUN/report.md" "$RUN/config.json" "$RUN/results.json"; then fail "17-digit reals in the report"; fi

# plots: valid SVG; SFT/KD loss and GRPO reward apart, one curve per trained stage (the
# base stage too), the shared sft stage once, labelled with both pipelines
/usr/bin/python3 - "$RUN" <<'PY' || fail "plot check failed"
import sys, xml.etree.ElementTree as ET
run = sys.argv[1]
ns = "{http://www.w3.org/2000/svg}"
def legend(name):
    root = ET.parse(f"{run}/{name}").getroot()
    assert root.tag == ns + "svg", name
    paths = root.findall(ns + "path")
    texts = [t.text for t in root.findall(ns + "text")]
    return len(paths), texts
ET.parse(f"{run}/accuracy.svg")
n, texts = legend("loss_curves.svg")
assert n == 3, f"loss_curves.svg: {n} curves"
assert "sft, sft-kd-rl: sft" in texts and "sft-kd-rl: kd" in texts and "base: instruct" in texts, texts
assert not any(t and t.endswith(": grpo") for t in texts), texts
n, texts = legend("reward_curves.svg")
assert n == 1 and "sft-kd-rl: grpo" in texts, (n, texts)
assert "GRPO step" in texts, texts
PY

# --check creates nothing: neither the default runs/ directory nor --out
mkdir "$WORK/empty"
(cd "$WORK/empty" && "$BIN" study "$SRC/configs/study-smoke.json" --check >"$WORK/check.txt" 2>&1) ||
  { cat "$WORK/check.txt" >&2; fail "study --check failed"; }
[ -z "$(ls -A "$WORK/empty")" ] || fail "study --check left files in the current directory: $(ls -A "$WORK/empty")"
"$BIN" study configs/study-smoke.json --check --out "$WORK/chk" >"$WORK/check.txt" 2>&1 || fail "study --check --out failed"
[ ! -e "$WORK/chk" ] || fail "study --check created --out"
tmpd=$(sed -n 's/.*checking in the temporary directory \(.*\)$/\1/p' "$WORK/check.txt")
[ -n "$tmpd" ] && [ ! -e "$tmpd" ] || fail "study --check left its temporary directory '$tmpd'"
# a base stage that is not defined, or a base that is not {"stages": [...]}: named errors, exit 2
for bad in '{"stages": ["nope"]}=base.stages\[0\]: not a stage defined' '{"stages": "instruct"}=base.stages: expected an array' \
           '{"stage": ["instruct"]}=base: unknown key .stage.'; do
  jq --argjson b "${bad%%=*}" '.base = $b' configs/study-smoke.json >"$WORK/badbase.json"
  rc=0; "$BIN" study "$WORK/badbase.json" --check >"$WORK/badbase.txt" 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || { cat "$WORK/badbase.txt" >&2; fail "bad base ${bad%%=*}: exit $rc, want 2"; }
  grep -q "${bad#*=}" "$WORK/badbase.txt" || { cat "$WORK/badbase.txt" >&2; fail "bad base ${bad%%=*}: message"; }
done
"$BIN" study --help | grep -q -- '--check' || fail "--help does not list --check"
# an exclude_split no synth set makes, or two pipelines with one name: named errors
for bad in '.data.synth[0].exclude_split = "tset"@@exclude_split: no arith set of split .tset.' \
           '.pipelines[1].name = "base"@@the name .base. is used twice'; do
  jq "${bad%%@@*}" configs/study-smoke.json >"$WORK/bad2.json"
  rc=0; "$BIN" study "$WORK/bad2.json" --check >"$WORK/bad2.txt" 2>&1 || rc=$?
  [ "$rc" -eq 2 ] && grep -q "${bad#*@@}" "$WORK/bad2.txt" || { cat "$WORK/bad2.txt" >&2; fail "--check with ${bad%%@@*}"; }
done
# a bad key inside a stage: --check quotes srlm run's reason (its log is removed with the
# temporary directory)
jq '.stages.grpo.bogus = 3' configs/study-smoke.json >"$WORK/badstage.json"
rc=0; "$BIN" study "$WORK/badstage.json" --check >"$WORK/badstage.txt" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q 'stages.grpo is not a valid pipeline stage: .*stages\[0\].bogus: unknown key' "$WORK/badstage.txt" ||
  { cat "$WORK/badstage.txt" >&2; fail "--check does not say why a stage is invalid"; }
# --check reads the model given by --model: a config without weights, or a broken
# safetensors header, is an error before anything is trained
mkdir -p "$WORK/noweights"
cp configs/models/tiny-qwen2.json "$WORK/noweights/config.json"
rc=0; "$BIN" study configs/study-smoke.json --check --model "$WORK/noweights" >"$WORK/nw.txt" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q 'no model.safetensors' "$WORK/nw.txt" || { cat "$WORK/nw.txt" >&2; fail "--check accepted a model without weights"; }
printf 'garbage!' >"$WORK/noweights/model.safetensors"
rc=0; "$BIN" study configs/study-smoke.json --check --model "$WORK/noweights" >"$WORK/nw.txt" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q 'model.safetensors: header' "$WORK/nw.txt" || { cat "$WORK/nw.txt" >&2; fail "--check accepted a broken safetensors file"; }

# --only: a subset without a KD stage does not train the teacher; the header counts it.
# With two seeds the report compares each stage's paired effect with the seed spread.
RUN2="$WORK/run-only"
"$BIN" study configs/study-smoke.json --only base,sft --seeds 1,2 --out "$RUN2" >"$WORK/only.txt" 2>&1 ||
  { cat "$WORK/only.txt" >&2; fail "study --only base,sft failed"; }
grep -q 'study study-smoke: 2 pipelines × 2 seed' "$WORK/only.txt" || fail "--only: header does not count 2 pipelines"
grep -q 'teacher: skipped' "$WORK/only.txt" || fail "--only base,sft: teacher not skipped"
[ ! -e "$RUN2/teacher" ] || fail "--only base,sft trained the teacher"
/usr/bin/python3 -c "
import json,sys
r=json.load(open(sys.argv[1]))
assert [p['name'] for p in r['pipelines']] == ['base', 'sft'], r" "$RUN2/results.json" || fail "--only: results.json"
grep -Eq '^\| sft \| base → sft \| [+-][0-9.]+ ± [0-9.]+ \[[^]]*\] (\*\*> spread [0-9.]+\*\*|≤ spread [0-9.]+) \|' "$RUN2/report.md" ||
  { grep 'base → sft' "$RUN2/report.md" >&2; fail "report.md: no spread comparison for the paired effect of sft"; }
if "$BIN" study configs/study-smoke.json --only nosuch --check >/dev/null 2>&1; then fail "--only with an unknown name accepted"; fi

# --jobs 2 runs independent stages/evaluations at once: the same models and accuracies
RUN3="$WORK/run-jobs2"
"$BIN" study configs/study-smoke.json --jobs 2 --out "$RUN3" >"$WORK/jobs.txt" 2>&1 ||
  { cat "$WORK/jobs.txt" >&2; fail "study --jobs 2 failed"; }
grep -q 'up to 2 at once' "$WORK/jobs.txt" || fail "--jobs 2: schedule line missing"
hashes() { (cd "$1" && find pipelines teacher base -name model.safetensors -path '*stage-*' | sort | xargs sha256sum); }
h1=$(hashes "$RUN")
[ "$(printf '%s\n' "$h1" | grep -c safetensors)" -ge 3 ] || fail "no stage checkpoints to compare: $h1"
[ "$h1" = "$(hashes "$RUN3")" ] || fail "--jobs 2 trained different models than --jobs 1"
/usr/bin/python3 -c "
import json,sys
a,b=(json.load(open(f)) for f in sys.argv[1:3])
acc=lambda r:[(p['name'],{k:v['accuracy'] for k,v in p['eval'].items()}) for p in r['pipelines']]
assert acc(a)==acc(b), (acc(a),acc(b))" "$RUN/results.json" "$RUN3/results.json" || fail "--jobs 2: different accuracies"
if "$BIN" study configs/study-smoke.json --jobs 0 --check >/dev/null 2>&1; then fail "--jobs 0 accepted"; fi
echo "ok: $n_stage stages, $n_eval evaluations"
