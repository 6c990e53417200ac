# expect: TLE
# group: resources
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import threading
def spin():
    while True:
        pass
def f(x):
    for _ in range(4):
        threading.Thread(target=spin, daemon=True).start()
    spin()
