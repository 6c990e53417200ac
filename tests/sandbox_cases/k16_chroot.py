# expect: SEC
# group: kernel surface
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os
def f(x):
    os.chroot('/tmp')
    return x + 1
