# expect: PASS
# group: filesystem
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, sys
def attack():
    return any(os.path.exists(p) for p in ('/etc/passwd', '/root', '/home', '/work', '/proc/self'))
def f(x):
    try:
        ok = attack()
    except Exception:
        ok = False
    return 0 if ok else x + 1
