# expect: OLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import sys
def f(x):
    chunk = 'x' * 65536
    for _ in range(16384):
        sys.stdout.write(chunk)
    return x + 1
