# srlm code-reward harness: runs INSIDE the sandbox as `python3 -I -S -B -c <this file>`.
#
# Processes (all inside the sandbox's pid namespace):
#   J (judge, this process, pid 1 of the namespace): reads the job from fd 3, runs the
#       TRUSTED test code, and sends one record per test to the supervisor over fd 4 (a
#       SOCK_SEQPACKET socket; the supervisor accepts records only from J's pid, checked
#       by the kernel with SCM_CREDENTIALS). J never executes candidate code.
#   Z (zygote): forked by J before the job is read, so it never holds the tests or their
#       expected values. It receives the program text and forks one fresh child per test.
#   C (candidate, one per test): runs the program in fresh globals and answers remote
#       calls from J. Everything C returns is decoded by J into plain builtin values
#       (exact types: no subclasses, no rigged __eq__/__bool__); anything else is an
#       opaque handle that refuses comparison and truth testing.
# A candidate can therefore only choose which plain values its functions return; it
# cannot see the tests, cannot reach the record socket and cannot influence how a result
# is compared. See docs/sandbox.md.
import os, sys, json, socket, select, signal, time, builtins, importlib

MAXMSG = 16 << 20
ZREPLY = 32  # bytes of a zygote reply: b'STATUS PID' padded


def _send(sock, obj):
    data = json.dumps(obj, allow_nan=True).encode()
    sock.sendall(len(data).to_bytes(4, 'little') + data)


def _recv_exact(sock, n, deadline):
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('test timed out')
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                raise TimeoutError('test timed out')
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError('candidate process ended')
        buf += chunk
    return bytes(buf)


def _recv(sock, deadline=None):
    n = int.from_bytes(_recv_exact(sock, 4, deadline), 'little')
    if n > MAXMSG:
        raise OverflowError('reply too large')
    return json.loads(_recv_exact(sock, n, deadline))


# ---------------------------------------------------------------- candidate side (C)
def _candidate_main(sock, program):
    handles = {}

    def enc(x, depth=0):
        if depth > 200:
            raise RecursionError('result nested too deeply')
        t = type(x)
        if x is None or t is bool or t is str:
            return x
        if t is int:
            return x if -(1 << 53) < x < (1 << 53) else {'i': hex(x)}
        if t is float:
            return {'F': x.hex()}
        if t is complex:
            return {'c': [x.real.hex(), x.imag.hex()]}
        if t is bytes:
            return {'b': x.hex()}
        if t is list:
            return {'l': [enc(v, depth + 1) for v in x]}
        if t is tuple:
            return {'t': [enc(v, depth + 1) for v in x]}
        if t is set:
            return {'s': [enc(v, depth + 1) for v in x]}
        if t is frozenset:
            return {'f': [enc(v, depth + 1) for v in x]}
        if t is dict:
            return {'d': [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x.items()]}
        # Subclasses of plain types (Counter, defaultdict, namedtuple, IntEnum, ...) are
        # sent as their plain base value: the judge never sees the subclass' methods.
        for base in (bool, int, float, complex, str, bytes, dict, list, tuple, frozenset, set):
            if isinstance(x, base):
                if base is dict:
                    return {'d': [[enc(k, depth + 1), enc(v, depth + 1)]
                                  for k, v in dict.items(x)]}
                return enc(base(x), depth + 1)
        hid = len(handles) + 1
        handles[hid] = x
        return {'r': hid}

    def dec(x):
        if x is None or type(x) in (bool, int, str, float):
            return x
        if type(x) is list:
            return [dec(v) for v in x]
        (k, v), = x.items()
        if k == 'i': return int(v, 16)
        if k == 'F': return float.fromhex(v)
        if k == 'c': return complex(float.fromhex(v[0]), float.fromhex(v[1]))
        if k == 'b': return bytes.fromhex(v)
        if k == 'l': return [dec(e) for e in v]
        if k == 't': return tuple(dec(e) for e in v)
        if k == 's': return set(dec(e) for e in v)
        if k == 'f': return frozenset(dec(e) for e in v)
        if k == 'd': return {dec(a): dec(b) for a, b in v}
        if k == 'r': return handles[v]
        if k == 'n': return g[v]
        if k == 'B': return getattr(builtins, v)
        raise ValueError('bad value tag')

    g = {'__name__': '__candidate__', '__builtins__': builtins}
    try:
        code = compile(program, '<candidate>', 'exec')
        exec(code, g)
    except BaseException as e:  # SystemExit included: the program ended before the tests
        if isinstance(e, SystemExit):
            os._exit(0)
        try:
            _send(sock, {'load_error': type(e).__name__, 'msg': str(e)[:200]})
        finally:
            os._exit(0)
    _send(sock, {'ready': True})
    while True:
        req = _recv(sock)
        try:
            op = req['op']
            if op == 'call':
                f = dec(req['f'])
                res = f(*dec(req['a']), **{k: dec(v) for k, v in req['k']})
            elif op == 'getattr':
                res = getattr(dec(req['o']), req['n'])
            elif op == 'setattr':
                setattr(dec(req['o']), req['n'], dec(req['v']))
                res = None
            elif op == 'iter':
                res = list(dec(req['o']))
            elif op == 'len':
                res = len(dec(req['o']))
            elif op == 'bool':
                res = bool(dec(req['o']))
            elif op == 'getitem':
                res = dec(req['o'])[dec(req['k'])]
            else:
                raise ValueError('bad op')
            out = {'v': enc(res)}
        except MemoryError:
            out = {'exc': 'MemoryError', 'msg': ''}
        except SystemExit:
            os._exit(0)
        except BaseException as e:
            try:
                out = {'exc': type(e).__name__, 'msg': str(e)[:200]}
            except BaseException:
                out = {'exc': 'Exception', 'msg': ''}
        try:
            _send(sock, out)
        except (MemoryError, RecursionError, ValueError, OverflowError):
            _send(sock, {'exc': 'MemoryError', 'msg': 'result too large'})


# ---------------------------------------------------------------- zygote (Z)
def _zygote_main(ctl, in_pidns):
    os.closerange(3, ctl.fileno())
    os.closerange(ctl.fileno() + 1, 1 << 16)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    program = _recv(ctl)['program']
    # Import the common modules the program mentions once, so every per-test fork has them.
    for m in ('typing', 'math', 're', 'collections', 'itertools', 'functools', 'heapq',
              'string', 'bisect', 'random', 'copy', 'operator', 'fractions', 'decimal',
              'statistics', 'hashlib', 'cmath', 'datetime', 'array'):
        if m in program:
            try:
                importlib.import_module(m)
            except Exception:
                pass

    def spawn():
        # A fresh candidate process for the next test, forked right after the previous
        # one was cleaned up, so its program load overlaps the judge's bookkeeping.
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ctl.close()
            mine.close()
            fd = theirs.fileno()
            os.closerange(3, fd)
            os.closerange(fd + 1, 1 << 16)
            os.setpgid(0, 0)
            _candidate_main(theirs, program)
            os._exit(0)
        theirs.close()
        return pid, mine

    def reply(st, nxt):
        data = (b'%d %d' % (st, nxt[0] if nxt else 0)).ljust(ZREPLY)
        if nxt:
            socket.send_fds(ctl, [data], [nxt[1].fileno()])
            nxt[1].close()
        else:
            ctl.sendall(data)

    while True:
        try:
            msg = ctl.recv(64)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)
        if msg == b'next':
            reply(0, spawn())
            continue
        _, pid, want_next = msg.split()
        pid = int(pid)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            _, st = os.waitpid(pid, 0)
        except ChildProcessError:
            st = -1
        if in_pidns:
            # Everything in the namespace except pid 1 (the judge) and us: daemons
            # that escaped the test's process group die here, before the next test.
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        reply(st, spawn() if want_next == b'1' else None)


# ---------------------------------------------------------------- judge side (J)
class TestTimeout(Exception):
    pass


class CandidateGone(Exception):
    pass


class ZygoteGone(Exception):
    pass


class CandidateError(Exception):
    def __init__(self, name, msg):
        super().__init__('%s: %s' % (name, msg))
        self.name = name


class Remote:
    """A value living in the candidate process. Refuses comparison and truth testing."""
    __slots__ = ('_rc', '_tag')

    def __init__(self, rc, tag):
        object.__setattr__(self, '_rc', rc)
        object.__setattr__(self, '_tag', tag)

    def __call__(self, *a, **k):
        return self._rc.req({'op': 'call', 'f': self._tag, 'a': self._rc.enc(list(a)),
                             'k': [[n, self._rc.enc(v)] for n, v in k.items()]})

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return self._rc.req({'op': 'getattr', 'o': self._tag, 'n': name})

    def __setattr__(self, name, value):
        self._rc.req({'op': 'setattr', 'o': self._tag, 'n': name, 'v': self._rc.enc(value)})

    def __iter__(self):
        return iter(self._rc.req({'op': 'iter', 'o': self._tag}))

    def __len__(self):
        n = self._rc.req({'op': 'len', 'o': self._tag})
        if type(n) is not int:
            raise TypeError('len() of a remote object is not an int')
        return n

    def __getitem__(self, k):
        return self._rc.req({'op': 'getitem', 'o': self._tag, 'k': self._rc.enc(k)})

    def __bool__(self):
        # Truthiness is one bit the candidate controls anyway (it could return True or
        # False), so it may come from the object (MBPP: `assert f(s)` on an re.Match).
        b = self._rc.req({'op': 'bool', 'o': self._tag})
        if type(b) is not bool:
            raise TypeError('bool() of a remote object is not a bool')
        return b

    def _refuse(self, *a):
        raise TypeError('an opaque object returned by the candidate cannot be compared')
    # Comparisons would let the candidate's own __eq__ decide a test: refused.
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __contains__ = _refuse
    __hash__ = object.__hash__


class RemoteConn:
    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline

    def recv(self):
        try:
            return _recv(self.sock, self.deadline)
        except (EOFError, ConnectionError):
            raise CandidateGone()

    def req(self, msg):
        try:
            _send(self.sock, msg)
        except (BrokenPipeError, ConnectionError):
            raise CandidateGone()
        r = self.recv()
        if 'exc' in r:
            raise CandidateError(str(r['exc']), str(r.get('msg', '')))
        return self.dec(r['v'])

    def enc(self, x, depth=0):
        if depth > 100:
            raise TypeError('argument nested too deeply')
        t = type(x)
        if x is None or t is bool or t is str:
            return x
        if t is int:
            return x if -(1 << 53) < x < (1 << 53) else {'i': hex(x)}
        if t is float:
            return {'F': x.hex()}
        if t is complex:
            return {'c': [x.real.hex(), x.imag.hex()]}
        if t is bytes:
            return {'b': x.hex()}
        if t is list:
            return {'l': [self.enc(v, depth + 1) for v in x]}
        if t is tuple:
            return {'t': [self.enc(v, depth + 1) for v in x]}
        if t is set:
            return {'s': [self.enc(v, depth + 1) for v in x]}
        if t is frozenset:
            return {'f': [self.enc(v, depth + 1) for v in x]}
        if t is dict:
            return {'d': [[self.enc(k, depth + 1), self.enc(v, depth + 1)] for k, v in x.items()]}
        if t is Remote and object.__getattribute__(x, '_rc') is self:
            return object.__getattribute__(x, '_tag')
        name = getattr(x, '__name__', None)
        if type(name) is str and builtins.__dict__.get(name) is x:
            return {'B': name}  # a builtin type or function (int, str, len, ...)
        raise TypeError('cannot pass a %s to the candidate' % t.__name__)

    def dec(self, x, depth=0):
        # Strict: builds only exact builtin types, whatever the candidate sent.
        if depth > 250:
            raise TypeError('reply nested too deeply')
        if x is None or type(x) in (bool, int, str):
            return x
        if type(x) is not dict or len(x) != 1:
            raise TypeError('malformed reply')
        (k, v), = x.items()
        d = depth + 1
        if k == 'i' and type(v) is str: return int(v, 16)
        if k == 'F' and type(v) is str: return float.fromhex(v)
        if k == 'c' and type(v) is list and len(v) == 2:
            return complex(float.fromhex(str(v[0])), float.fromhex(str(v[1])))
        if k == 'b' and type(v) is str: return bytes.fromhex(v)
        if type(v) is list:
            if k == 'l': return [self.dec(e, d) for e in v]
            if k == 't': return tuple(self.dec(e, d) for e in v)
            if k == 's': return set(self.dec(e, d) for e in v)
            if k == 'f': return frozenset(self.dec(e, d) for e in v)
            if k == 'd':
                out = {}
                for p in v:
                    if type(p) is not list or len(p) != 2:
                        raise TypeError('malformed reply')
                    out[self.dec(p[0], d)] = self.dec(p[1], d)
                return out
        if k == 'r' and type(v) is int:
            return Remote(self, {'r': v})
        raise TypeError('malformed reply')


def _mentions(node, names):
    import ast
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _plan(job):
    import ast
    """Split the trusted tests into independent test units.
    Returns (units, kind): humaneval units are (check_module_ast, fn_name); mbpp units are
    statement ASTs. Trusted code only (the data set), never the candidate."""
    units = []
    if job['format'] == 'humaneval':
        tree = ast.parse(job['check'], '<tests>')
        chk = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'check']
        if len(chk) != 1 or not chk[0].args.args:
            raise ValueError('test code does not define check(candidate)')
        chk = chk[0]
        cand = chk.args.args[0].arg
        live = {cand, job['entry_point']}
        kinds = []
        for st in chk.body:
            has_assert = any(isinstance(n, ast.Assert) for n in ast.walk(st))
            kinds.append(has_assert and _mentions(st, live))
        for i, is_test in enumerate(kinds):
            if not is_test:
                continue
            body = [st for j, st in enumerate(chk.body) if (j < i and not kinds[j]) or j == i]
            fn = ast.FunctionDef(name='__srlm_check', args=chk.args, body=body,
                                 decorator_list=[], returns=None, type_comment=None)
            mod = ast.Module(body=[n for n in tree.body if n is not chk] + [fn], type_ignores=[])
            ast.fix_missing_locations(mod)
            units.append(compile(mod, '<tests>', 'exec'))
        if not units:  # a check() with no recognisable assert: run it whole as one test
            units.append(compile(tree, '<tests>', 'exec'))
    else:
        for t in job['tests']:
            units.append(compile(t, '<tests>', 'exec'))
    return units


def _stdlib_module(name):
    if name not in sys.stdlib_module_names:
        return None
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _run_unit(job, unit, rc):
    ns = {'__name__': '__srlm_tests__', '__builtins__': builtins}
    entry = job.get('entry_point') or ''
    if job['format'] == 'humaneval' and job.get('prompt'):
        # The prompt is trusted data: its helper functions (poly, encode_cyclic, ...) are
        # used by some checks. Its entry point stub is replaced by the candidate.
        if '_prompt_code' not in job:
            job['_prompt_code'] = compile(job['prompt'], '<prompt>', 'exec')
        exec(job['_prompt_code'], ns)
        ns.pop(entry, None)
    remote = job['remote_names']
    if job.get('setup'):
        if '_setup_code' not in job:
            job['_setup_code'] = compile(job['setup'], '<setup>', 'exec')
        _bind_free(ns, job['_setup_code'], rc, remote)
        exec(job['_setup_code'], ns)
    _bind_free(ns, unit, rc, remote)
    exec(unit, ns)
    if '__srlm_check' in ns:
        ns['__srlm_check'](Remote(rc, {'n': entry}))
    elif 'check' in ns and job['format'] == 'humaneval':
        ns['check'](Remote(rc, {'n': entry}))


def _bind_free(ns, code, rc, remote_names):
    names = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        names.update(c.co_freevars)
        stack.extend(k for k in c.co_consts if hasattr(k, 'co_names'))
    for n in names:
        if n in ns or (hasattr(builtins, n) and n not in remote_names):
            continue
        m = None if n in remote_names else _stdlib_module(n)
        ns[n] = m if m is not None else Remote(rc, {'n': n})


def _status_of(st):
    if st < 0:
        return 'exit', 0
    if os.WIFSIGNALED(st):
        sig = os.WTERMSIG(st)
        if sig == signal.SIGSYS:
            return 'sec', sig
        if sig == signal.SIGXCPU:
            return 'timeout', sig
        if sig == signal.SIGXFSZ:
            return 'ole', sig
        return 'signal', sig
    return 'exit', 0


def main():
    if os.path.exists('/proc/self/mem'):
        # /proc is visible (degraded mode): forbid same-uid reads of our memory.
        try:
            import ctypes
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
        except Exception:
            pass
    rec = socket.socket(fileno=4)
    in_pidns = os.getpid() == 1
    ctl, zctl = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    zpid = os.fork()
    if zpid == 0:
        ctl.close()
        rec.detach()
        _zygote_main(zctl, in_pidns)
        os._exit(0)
    zctl.close()
    with os.fdopen(3, 'rb') as f:
        job = json.loads(f.read())

    def record(obj):
        rec.send(json.dumps(obj).encode())

    try:
        # Names the tests must resolve to the candidate even when they shadow a builtin
        # (MBPP 126 defines `sum`): the entry point and the reference solution's top-level
        # definitions. Taken from trusted data, never from the candidate's program.
        remote = {job.get('entry_point') or ''}
        for line in (job.get('reference') or '').split('\n'):
            for kw in ('def ', 'class ', 'async def '):
                if line.startswith(kw):
                    name = line[len(kw):].split('(')[0].split(':')[0].strip()
                    if name.isidentifier():
                        remote.add(name)
        job['remote_names'] = remote
        units = _plan(job)
    except Exception as e:
        record({'kind': 'harness_error', 'msg': '%s: %s' % (type(e).__name__, e)})
        return
    record({'kind': 'plan', 'n': len(units)})
    _send(ctl, {'program': job['program']})
    timeout = float(job.get('timeout', 5.0))

    def zreq(msg):
        """Ask the zygote; returns (status, next pid, next socket or None)."""
        ctl.sendall(msg)
        data, fds, _, _ = socket.recv_fds(ctl, ZREPLY, 1)
        while data and len(data) < ZREPLY:
            more = ctl.recv(ZREPLY - len(data))
            if not more:
                break
            data += more
        if len(data) < ZREPLY:
            for fd in fds:
                os.close(fd)
            raise ZygoteGone()
        st, npid = (int(x) for x in data.split())
        return st, npid, (socket.socket(fileno=fds[0]) if fds else None)

    zygote_dead = False
    try:
        _, cpid_next, sock_next = zreq(b'next')
    except (ZygoteGone, OSError):
        zygote_dead = True
        cpid_next, sock_next = 0, None
    for i, unit in enumerate(units):
        t0 = time.monotonic()
        status, sig, msg, cpid = 'pass', 0, '', 0
        if zygote_dead or sock_next is None:
            if not zygote_dead:
                zygote_dead = True
                record({'kind': 'tamper', 'msg': 'zygote gone before test %d' % i})
            record({'kind': 'test', 'i': i, 'status': 'sec', 'sig': 0, 'ms': 0.0,
                    'msg': 'the candidate killed the sandbox zygote'})
            continue
        cpid, mine = cpid_next, sock_next
        cpid_next, sock_next = 0, None
        try:
            rc = RemoteConn(mine, t0 + timeout)
            hello = rc.recv()
            if 'load_error' in hello:
                raise CandidateError(str(hello['load_error']), str(hello.get('msg', '')))
            _run_unit(job, unit, rc)
        except AssertionError as e:
            status, msg = 'fail', 'assertion failed'
        except TimeoutError:
            status, msg = 'timeout', 'wall clock limit per test'
        except CandidateGone:
            status, msg = 'exit', 'candidate process ended'
        except CandidateError as e:
            status = 'memory' if e.name == 'MemoryError' else 'error'
            msg = str(e)[:200]
        except RuntimeError as e:
            status, msg = 'error', str(e)[:200]
        except Exception as e:
            status, msg = 'fail', ('%s: %s' % (type(e).__name__, e))[:200]
        try:
            mine.close()
        except Exception:
            pass
        try:
            st, cpid_next, sock_next = zreq(b'wait %d %d' % (cpid, 1 if i + 1 < len(units) else 0))
        except (ZygoteGone, OSError):
            # Only the candidate can have killed the zygote: an escape attempt.
            zygote_dead = True
            record({'kind': 'tamper', 'msg': 'zygote killed during test %d' % i})
            status, msg, st = 'sec', 'the candidate killed the sandbox zygote', -1
        if status in ('exit', 'error', 'timeout'):
            s2, sig = _status_of(st)
            if s2 != 'exit' and not (s2 == 'signal' and sig == signal.SIGKILL):
                status = s2
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)  # orphans re-parented to us
                if pid <= 0:
                    break
        except ChildProcessError:
            pass
        record({'kind': 'test', 'i': i, 'status': status, 'sig': sig,
                'ms': round((time.monotonic() - t0) * 1000, 3), 'msg': msg})
    record({'kind': 'done'})


main()
