#!/usr/bin/env bash
# it_reward_code.sh — `srlm reward-code --jsonl` and `srlm sandbox` from the command line:
# input order with --jobs 2, HumanEval / MBPP / canonical problems, fenced completions,
# malformed lines (error with file:line, reward null, the other lines still scored),
# usage errors (exit 2), and the sandbox verdict JSON.
set -euo pipefail
BIN=${SRLM_BIN:?SRLM_BIN not set}
T=$(mktemp -d /tmp/srlm-it-rc.XXXXXX)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"  # the sandbox uid mounts its root under SRLM_SANDBOX_DIR
fail() { echo "FAIL: $*" >&2; exit 1; }
export SRLM_SANDBOX_DIR="$T/sbx"
mkdir -p "$SRLM_SANDBOX_DIR"

/usr/bin/python3 - "$T/in.jsonl" <<'PY'
import json, sys
he = {"task_id": "x/0", "prompt": "def inc(n):\n    \"\"\"n + 1\"\"\"\n", "entry_point": "inc",
      "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n",
      "canonical_solution": "    return n + 1\n"}
mb = {"text": "double", "code": "def dbl(x):\n    return 2 * x\n", "test_setup_code": "",
      "test_list": ["assert dbl(2) == 4", "assert dbl(0) == 0", "assert dbl(-3) == -6"]}
canon = {"id": "synth-code/test/0", "kind": "code", "code_format": "mbpp", "entry_point": "sq",
         "test_list": ["assert sq(3) == 9", "assert sq(4) == 16"]}
lines = [
    {"problem": he, "completion": "    return n + 1\n"},
    {"problem": mb, "completion": "Here you go:\n```python\ndef dbl(x):\n    return x + x\n```\n"},
    {"problem": canon, "completion": "def sq(v):\n    return v * 3\n"},
    {"problem": he, "completion": "    import time\n    time.sleep(100)\n"},
]
with open(sys.argv[1], "w") as f:
    for i, l in enumerate(lines):
        f.write(json.dumps(l) + "\n")
        if i == 1:
            f.write("{not json\n")
PY
"$BIN" reward-code --jsonl --jobs 2 --timeout 1 --input "$T/in.jsonl" >"$T/out.jsonl" 2>"$T/err" ||
    fail "reward-code exit $?: $(cat "$T/err")"
/usr/bin/python3 - "$T/out.jsonl" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 5, len(r)
assert r[0]["verdict"] == "PASS" and r[0]["reward"] == 1.0 and r[0]["passed"] is True and r[0]["error"] is None, r[0]
assert len(r[0]["tests"]) == 2
assert r[1]["verdict"] == "PASS" and r[1]["format_ok"] is True, r[1]
assert r[2]["reward"] is None and r[2]["error"].endswith(":3: invalid JSON: " + r[2]["error"].split("invalid JSON: ")[1]), r[2]
assert ":3:" in r[2]["error"], r[2]
assert r[3]["verdict"] == "WA" and r[3]["reward"] == 0.5 and r[3]["passed"] is False, r[3]
assert r[4]["verdict"] == "TLE" and r[4]["reward"] == 0.0, r[4]
assert all(t["status"] == "timeout" for t in r[4]["tests"]), r[4]
PY
[ -z "$(ls -A "$SRLM_SANDBOX_DIR")" ] || fail "work directories left behind"

# usage errors
set +e
"$BIN" reward-code >/dev/null 2>&1; [ $? -eq 2 ] || fail "no mode should be a usage error"
"$BIN" reward-code --jsonl --jobs 0 >/dev/null 2>&1; [ $? -eq 2 ] || fail "--jobs 0 should be a usage error"
"$BIN" sandbox >/dev/null 2>&1; [ $? -eq 2 ] || fail "sandbox without a command should be a usage error"
set -e
"$BIN" reward-code --help | grep -q -- "--connect" || fail "--help"

# srlm sandbox
"$BIN" sandbox --wall 5 -- python3 -I -c "import os; print(os.getuid() != 0, os.path.exists('/etc'))" >"$T/s.json"
/usr/bin/python3 - "$T/s.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["verdict"] == "OK" and s["exit_code"] == 0 and s["stdout"] == "True False\n", s
PY
"$BIN" sandbox --wall 1 -- python3 -c "while True: pass" | grep -q '"verdict":"TLE"' || fail "sandbox TLE"
echo "it_reward_code: ok"
