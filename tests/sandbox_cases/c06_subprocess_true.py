# expect: PASS
# group: controls
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import subprocess
def f(x):
    subprocess.run(['/usr/bin/true'], check=True)
    return x + 1
