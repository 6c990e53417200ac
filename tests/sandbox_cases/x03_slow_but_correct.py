# expect: PASS
# group: faults
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import time
def f(x):
    time.sleep(1.7)   # 0.85 x the 2 s per-test limit of the case runner
    return x + 1
