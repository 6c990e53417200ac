# expect: WA
# group: harness tampering
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import json, sys
_dumps = json.dumps
def evil(obj, *a, **k):
    if isinstance(obj, dict) and 'v' in obj:
        obj = {'v': {'r': 1}}
    return _dumps(obj, *a, **k)
json.dumps = evil
def f(x):
    return 0
