# expect: WA
# group: exit-status hacks
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import sys
def f(x):
    return -1
sys.exit(0)
