# expect: SEC
# group: kernel surface
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def f(x):
    libc.syscall(227, 0, ctypes.create_string_buffer(16))
    return x + 1
