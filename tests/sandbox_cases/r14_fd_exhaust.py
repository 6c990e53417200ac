# expect: RE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
def f(x):
    fs = [open('/dev/null') for _ in range(10 ** 6)]
    return x + 1
