# expect: PASS
# group: controls
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import functools, itertools, collections
@functools.lru_cache(maxsize=None)
def f(x):
    c = collections.Counter(itertools.repeat(1, 1))
    return x + sum(c.values())
