# expect: WA
# group: harness tampering
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import sys
def f(x):
    # look for the tests in the caller frames: only the request is there
    fr = sys._getframe(1)
    seen = []
    while fr is not None:
        seen.extend(repr(v) for v in fr.f_locals.values())
        fr = fr.f_back
    for s in seen:
        if ('assert ' + 'f(1)') in s or ('assert ' + 'f(5)') in s:
            return x + 1
    return 0
