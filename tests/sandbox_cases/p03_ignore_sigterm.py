# expect: TLE
# group: process escape
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
def f(x):
    while True:
        time.sleep(1)
