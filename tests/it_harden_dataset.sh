#!/usr/bin/env bash
# it_harden_dataset.sh — hostile input for `srlm data import`: every malformed file
# (bad / truncated / binary / NUL / invalid UTF-8 / deeply nested JSON, wrong types,
# truncated gzip, duplicate ids, unknown chat roles, directories,
# missing files) must fail with FILE:LINE (or FILE:) and exit status 1, never crash, and
# leave the store byte-for-byte as it was; BOM, CRLF, blank lines and a missing final
# newline are accepted. A kill -9 during an import leaves the old or the new store, never
# a mix.
set -euo pipefail
BIN=${SRLM_BIN:?SRLM_BIN not set}
T=$(mktemp -d /tmp/srlm-it-hdata.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
DB="$T/db"
cd "$T"

/usr/bin/python3 - <<'PY'
import gzip, json, zlib
good = {"question": "What is 2+2?", "answer": "2+2=<<2+2=4>>4\n#### 4"}
gl = (json.dumps(good) + "\n").encode()
def w(name, data):
    open(name, "wb").write(data)
def wl(name, lines):
    w(name, b"".join((l if isinstance(l, bytes) else json.dumps(l).encode()) + b"\n" for l in lines))
w("ok.jsonl", gl * 3)
# accepted variants of the same 3 records
w("crlf.jsonl", (json.dumps(good) + "\r\n").encode() * 3)
w("bom.jsonl", b"\xef\xbb\xbf" + gl * 3)
w("blank.jsonl", gl + b"\n \t\r\n\n" + gl + gl)
w("nofinalnl.jsonl", gl * 2 + gl.rstrip(b"\n"))
# gsm8k: bad files, each "NAME LINE" in bad_gsm8k.txt
bad = {}
def b(name, data, line):
    w(name, data); bad[name] = line
b("badjson.jsonl", gl * 2 + b'{"question": "x", "answer": \n' + gl, 3)
b("trunc.jsonl", gl * 2 + gl[:20], 3)
b("binary.jsonl", bytes(range(256)) * 10, 1)
b("nul.jsonl", gl + b"\x00\x00\x00\n" + gl, 2)
b("nulesc.jsonl", gl + b'{"question":"a\\u0000b","answer":"#### 4"}\n', 2)
b("badutf8.jsonl", gl + b'{"question":"\xff\xfe bad","answer":"#### 4"}\n', 2)
b("surrogate.jsonl", gl + b'{"question":"\\ud800","answer":"#### 4"}\n', 2)
b("nested.jsonl", gl + b'{"question":' + b"[" * 100000 + b"]" * 100000 + b',"answer":"#### 4"}\n', 2)
b("array.jsonl", gl + b"[1,2,3]\n", 2)
b("string.jsonl", gl + b'"just a string"\n', 2)
b("wrongtype.jsonl", gl + json.dumps({"question": 5, "answer": "#### 4"}).encode() + b"\n", 2)
b("wrongtype2.jsonl", gl + json.dumps({"question": "q", "answer": ["#### 4"]}).encode() + b"\n", 2)
b("missing.jsonl", gl + json.dumps({"question": "q"}).encode() + b"\n", 2)
b("nohash.jsonl", gl + json.dumps({"question": "q", "answer": "no hash"}).encode() + b"\n", 2)
b("nonnum.jsonl", gl + json.dumps({"question": "q", "answer": "x\n#### four"}).encode() + b"\n", 2)
b("dupkey.jsonl", gl + b'{"question":"a","question":"b","answer":"#### 4"}\n', 2)
b("empty.jsonl", b"", 0)
b("onlyblank.jsonl", b"\n\r\n  \n", 0)
b("notjson.jsonl.gz", gzip.compress(b"hello world\n"), 1)
# a gzip cut at a flush point ends on a line boundary: it must not import silently short
c = zlib.compressobj(6, zlib.DEFLATED, 31)
out = c.compress(gl * 3) + c.flush(zlib.Z_FULL_FLUSH)
cut = len(out)
out += c.compress(gl * 3) + c.flush()
b("cutline.jsonl.gz", out[:cut], 0)
w("full6.jsonl.gz", out)
b("cutmid.jsonl.gz", gzip.compress(gl * 100)[:-30], 0)
open("bad_gsm8k.txt", "w").write("".join(f"{k} {v}\n" for k, v in bad.items()))
# other formats: "FORMAT NAME LINE"
other = []
ok_m = {"problem": "p", "solution": "so \\boxed{\\frac{1}{2}}.", "level": "Level 1", "type": "Algebra"}
wl("m_unbal.jsonl", [ok_m, {"problem": "p", "solution": "\\boxed{\\frac{1}{2}.", "level": "Level 1", "type": "Algebra"}]); other.append("math m_unbal.jsonl 2")
wl("m_level.jsonl", [ok_m, {"problem": "p", "solution": "\\boxed{1}", "level": [1], "type": "Algebra"}]); other.append("math m_level.jsonl 2")
wl("j_dupid.jsonl", [{"id": "a", "prompt": "p", "completion": "c"}, {"id": "b", "prompt": "p", "completion": "c"}, {"id": "a", "prompt": "q", "completion": "d"}]); other.append("jsonl j_dupid.jsonl 3")
wl("j_role.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}, {"messages": [{"role": "wizard", "content": "x"}]}]); other.append("jsonl j_role.jsonl 2")
wl("j_msgs.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}, {"messages": "notalist"}]); other.append("jsonl j_msgs.jsonl 2")
wl("j_msgs2.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}, {"messages": [{"role": 5, "content": "x"}]}]); other.append("jsonl j_msgs2.jsonl 2")
wl("j_ans.jsonl", [{"prompt": "p", "answer": "1"}, {"prompt": "p", "answer": {"a": 1}}]); other.append("jsonl j_ans.jsonl 2")
wl("j_kind.jsonl", [{"prompt": "p", "completion": "c", "kind": "poetry"}]); other.append("jsonl j_kind.jsonl 1")
wl("j_none.jsonl", [{"prompt": "p"}, {}]); other.append("jsonl j_none.jsonl 2")
wl("mb_dup.jsonl", [{"task_id": 7, "text": "t", "code": "def f(): pass", "test_list": ["assert f() is None"], "test_setup_code": ""}] * 2); other.append("mbpp mb_dup.jsonl 2")
wl("mb_tid.jsonl", [{"task_id": "x", "text": "t", "code": "c", "test_list": ["assert f()"], "test_setup_code": ""}]); other.append("mbpp mb_tid.jsonl 1")
wl("mb_tests.jsonl", [{"task_id": 1, "text": "t", "code": "c", "test_list": "assert f()", "test_setup_code": ""}]); other.append("mbpp mb_tests.jsonl 1")
w("mbs_trunc.json", b'[{"task_id": 1, "prompt": "x", "code": "def f'); other.append("mbpp-sanitized mbs_trunc.json 1")
open("bad_other.txt", "w").write("\n".join(other) + "\n")
PY

"$BIN" data import --db "$DB" --format gsm8k --split train ok.jsonl 2>/dev/null || fail "import ok.jsonl"
"$BIN" data import --db "$DB" --format jsonl --split train j_ok.jsonl 2>/dev/null && fail "missing file accepted"
"$BIN" data export --db "$DB" >before.jsonl
[[ $(wc -l <before.jsonl) -eq 3 ]] || fail "3 records expected"
unchanged() { "$BIN" data export --db "$DB" >after.jsonl && cmp -s before.jsonl after.jsonl; }

expect_fail() { # FORMAT FILE LINE [SPLIT]
    local fmt=$1 f=$2 line=$3 rc=0
    "$BIN" data import --db "$DB" --format "$fmt" ${4:+--split "$4"} "$f" >out.txt 2>err.txt || rc=$?
    [[ $rc -eq 1 ]] || fail "$fmt $f: exit status $rc, want 1 ($(cat err.txt))"
    if [[ $line -gt 0 ]]; then
        grep -q -- "$f:$line: " err.txt || grep -q -- "$f: element $line: " err.txt ||
            grep -q -- "$f:$line: " err.txt || fail "$fmt $f: no '$f:$line:' in: $(cat err.txt)"
    else
        grep -q -- "$f: " err.txt || fail "$fmt $f: message does not name the file: $(cat err.txt)"
    fi
    grep -q "store unchanged" err.txt || fail "$fmt $f: no 'store unchanged': $(cat err.txt)"
    unchanged || fail "$fmt $f: store changed"
}
while read -r f line; do expect_fail gsm8k "$f" "$line" train; done <bad_gsm8k.txt
while read -r fmt f line; do
    if [[ $fmt == mbpp* ]]; then expect_fail "$fmt" "$f" "$line"; else expect_fail "$fmt" "$f" "$line" train; fi
done <bad_other.txt
mkdir adir
expect_fail gsm8k adir 0 train
expect_fail gsm8k no_such_file.jsonl 0 train
# a bad file after a good one in the same command: nothing of either is written
"$BIN" data import --db "$DB" --format gsm8k --split test ok.jsonl badjson.jsonl 2>err.txt && fail "mixed import succeeded"
unchanged || fail "mixed import changed the store"

# accepted variants give exactly the records of ok.jsonl
for f in crlf.jsonl bom.jsonl blank.jsonl nofinalnl.jsonl; do
    "$BIN" data import --db "$DB" --format gsm8k --split train "$f" 2>err.txt || fail "$f rejected: $(cat err.txt)"
    unchanged || fail "$f: records differ from ok.jsonl"
done
"$BIN" data import --db "$DB" --format gsm8k --split train full6.jsonl.gz 2>/dev/null || fail "full6.jsonl.gz"
[[ $("$BIN" data export --db "$DB" | wc -l) -eq 6 ]] || fail "full6: 6 records expected"

# kill -9 in the middle of a large import: the store is the old or the new one
"$BIN" data import --db "$DB" --format gsm8k --split train ok.jsonl 2>/dev/null
/usr/bin/python3 -c "
import json
g = {'question': 'q' * 2000, 'answer': 'x\n#### 4'}
open('big.jsonl', 'w').write((json.dumps(g) + '\n') * 40000)"
"$BIN" data import --db "$DB" --format gsm8k --split train big.jsonl 2>/dev/null &
pid=$!
sleep 0.5
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
n=$("$BIN" data export --db "$DB" | wc -l) || fail "store unreadable after kill -9"
[[ $n -eq 3 || $n -eq 40000 ]] || fail "after kill -9: $n records (want 3 or 40000)"
"$BIN" data import --db "$DB" --format gsm8k --split train ok.jsonl 2>/dev/null || fail "import after kill -9"
unchanged || fail "store differs after kill -9 + reimport"
echo "it_harden_dataset: OK"
