# expect: PASS
# group: network
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, sys
def attack():
    import socket
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    return True
def f(x):
    try:
        ok = attack()
    except Exception:
        ok = False
    return 0 if ok else x + 1
