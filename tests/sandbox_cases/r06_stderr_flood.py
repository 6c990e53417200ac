# expect: OLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os
def f(x):
    while True:
        os.write(2, b'e' * 65536)
