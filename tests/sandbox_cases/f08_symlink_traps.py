# expect: PASS
# group: filesystem
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, sys
def attack():
    # links for the supervisor's clean-up to follow (it must not)
    os.symlink('/', '/tmp/rootlink')
    os.symlink('/etc/passwd', '/tmp/passwd')
    os.mkdir('/tmp/d')
    os.symlink('/usr', '/tmp/d/usr')
    return False
def f(x):
    try:
        ok = attack()
    except Exception:
        ok = False
    return 0 if ok else x + 1
