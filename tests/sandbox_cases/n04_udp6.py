# expect: PASS
# group: network
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, sys
def attack():
    import socket
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.sendto(b'x', ('::1', 53))
    return True
def f(x):
    try:
        ok = attack()
    except Exception:
        ok = False
    return 0 if ok else x + 1
