# expect: PASS
# group: controls
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
def f(x):
    for i in range(10 ** 5):
        print(i)
    return x + 1
