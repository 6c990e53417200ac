# expect: PASS
# group: controls
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
def f(x):
    b = bytearray(200 * 1024 * 1024)
    b[-1] = 1
    return x + b[-1]
