# expect: SEC
# group: kernel surface
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, stat
def f(x):
    os.mknod('/tmp/null2', 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return x + 1
