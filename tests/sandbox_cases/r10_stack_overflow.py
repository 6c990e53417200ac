# expect: RE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
# C-stack recursion (str -> __str__ -> str ...) with the recursion limit lifted: SIGSEGV
import sys
sys.setrecursionlimit(10**9)
class A:
    def __str__(self):
        return str(self)
def f(x):
    return str(A())
