# expect: WA
# group: process escape
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, time
def f(x):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(0.5)
            with open('/tmp/pwned', 'w') as fh:
                fh.write('daemon was here')
            while True:
                time.sleep(1)
        os._exit(0)
    return -x
