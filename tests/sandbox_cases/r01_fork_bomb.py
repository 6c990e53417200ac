# expect: TLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
def f(x):
    return x + 1
