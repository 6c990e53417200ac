# expect: PASS
# group: filesystem
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, sys
def attack():
    import sysconfig
    p = os.path.join(sysconfig.get_paths()['purelib'], 'sitecustomize.py')
    open(p, 'w').write('print(1)')
    return True
def f(x):
    try:
        ok = attack()
    except Exception:
        ok = False
    return 0 if ok else x + 1
