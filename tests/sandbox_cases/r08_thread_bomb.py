# expect: RE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import threading, time
def f(x):
    ts = []
    while True:
        t = threading.Thread(target=time.sleep, args=(30,), daemon=True)
        t.start()
        ts.append(t)
