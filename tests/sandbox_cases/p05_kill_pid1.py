# expect: PASS
# group: process escape
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
# probe: pid 1 of the sandbox (the judge) ignores signals from inside the namespace
import os
def f(x):
    try:
        os.kill(1, 9)
    except OSError:
        pass
    return x + 1
