# expect: WA
# group: harness tampering
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
class B:
    def __bool__(self):
        return True
    def __eq__(self, o):
        return B()
def f(x):
    return B()
