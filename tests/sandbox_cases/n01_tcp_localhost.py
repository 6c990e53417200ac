# expect: PASS
# group: network
# nouserns: yes
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, sys
def attack():
    import socket
    socket.create_connection(('127.0.0.1', 22), timeout=1).close()
    return True
def f(x):
    try:
        ok = attack()
    except Exception:
        ok = False
    return 0 if ok else x + 1
