# expect: TLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import time
def f(x):
    time.sleep(10**9)
