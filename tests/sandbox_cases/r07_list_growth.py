# expect: MLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
def f(x):
    a = ['x' * (10 ** 6)]
    while True:
        a.append(a[-1] * 3000)   # 3 GB: over the address-space limit
