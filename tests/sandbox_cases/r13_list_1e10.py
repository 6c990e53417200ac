# expect: MLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
def f(x):
    return len([0] * (10 ** 10))
