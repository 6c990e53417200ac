# expect: SEC
# group: kernel surface
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def f(x):
    libc.syscall(246, 0, 0, 0, 0)
    return x + 1
