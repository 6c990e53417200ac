# expect: RE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
def f(x):
    with open('/tmp/big', 'wb') as fh:
        for _ in range(4096):
            fh.write(b'\0' * (1 << 20))
    return x + 1
