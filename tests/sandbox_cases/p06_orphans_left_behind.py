# expect: PASS
# group: process escape
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
# probe: children left running are killed after each test (checked by the test program)
import os, time
def f(x):
    for _ in range(5):
        if os.fork() == 0:
            os.setsid()
            time.sleep(3600)
            os._exit(0)
    return x + 1
