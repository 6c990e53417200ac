# expect: PASS
# group: faults
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import time
def f(x):
    time.sleep(2.55)   # 0.85 x the 3 s per-test limit of the case runner
    return x + 1
