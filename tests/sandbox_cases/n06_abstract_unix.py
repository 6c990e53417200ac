# expect: PASS
# group: network
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, sys
def attack():
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for name in (b'\0/tmp/.X11-unix/X0', b'\0/org/freedesktop/systemd1/notify', b'\0srlm'):
        try:
            s.connect(name)
            return True
        except OSError:
            pass
    return False
def f(x):
    try:
        ok = attack()
    except Exception:
        ok = False
    return 0 if ok else x + 1
