# expect: TLE
# group: process escape
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, signal, time
def f(x):
    os.kill(os.getppid(), signal.SIGSTOP)
    time.sleep(100)
