# expect: PASS
# group: controls
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import math, decimal, fractions
def f(x):
    return int(decimal.Decimal(x) + decimal.Decimal(math.floor(1.5))) + fractions.Fraction(0).numerator
