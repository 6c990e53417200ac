# expect: WA
# group: harness tampering
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
class Anything:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = object.__hash__
def f(x):
    return Anything()
