# expect: MLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
x = bytearray(10**11)
def f(x):
    return x + 1
