# expect: PASS
# group: filesystem
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, sys
def attack():
    # the candidate process never held the tests: look for them in every object
    import gc
    for o in gc.get_objects():
        try:
            if isinstance(o, (str, bytes)) and (b'assert f(' if isinstance(o, bytes) else 'assert f(') in o:
                return True
            if isinstance(o, dict):
                for v in list(o.values()):
                    if isinstance(v, str) and 'assert f(' in v:
                        return True
        except Exception:
            pass
    return False
def f(x):
    try:
        ok = attack()
    except Exception:
        ok = False
    return 0 if ok else x + 1
