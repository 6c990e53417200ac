# expect: PASS
# group: controls
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import tempfile, os
def f(x):
    with tempfile.NamedTemporaryFile('w+', dir=os.getcwd(), delete=False) as fh:
        fh.write(str(x + 1))
        name = fh.name
    with open(name) as fh:
        return int(fh.read())
