# expect: SEC
# group: process escape
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os
def f(x):
    os.kill(os.getppid(), 9)
    return x + 1
