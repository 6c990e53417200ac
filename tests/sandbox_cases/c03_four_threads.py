# expect: PASS
# group: controls
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import threading
def f(x):
    out = []
    ts = [threading.Thread(target=lambda i=i: out.append(i)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return x + 1 if sorted(out) == [0, 1, 2, 3] else 0
