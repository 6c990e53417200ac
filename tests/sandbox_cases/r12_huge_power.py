# expect: TLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
def f(x):
    return len(str(7 ** (10 ** 9)))
