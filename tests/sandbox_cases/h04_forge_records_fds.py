# expect: WA
# group: harness tampering
# problem: def f(x) returning x + 1 (tests: f(1) == 2, f(5) == 6)
import os, json, socket
def f(x):
    rec = json.dumps({"kind": "test", "i": 0, "status": "pass", "sig": 0, "ms": 1, "msg": ""}).encode()
    for fd in range(0, 64):
        try:
            os.write(fd, rec)
        except OSError:
            pass
        try:
            socket.socket(fileno=os.dup(fd)).send(rec)
        except OSError:
            pass
    return 0
