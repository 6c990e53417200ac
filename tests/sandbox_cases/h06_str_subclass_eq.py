# expect: WA
# group: harness tampering
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
class S(str):
    def __eq__(self, other):
        return True
    __hash__ = str.__hash__
def f(x):
    return S('nope')
