# expect: WA
# group: harness tampering
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import builtins
builtins.isinstance = lambda *a: True
builtins.AssertionError = type('Nope', (Exception,), {})
builtins.abs = lambda v: 0
builtins.len = lambda v: 0
def f(x):
    return x
