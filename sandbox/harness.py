# srlm code-reward harness: runs INSIDE the sandbox as `python3 -I -S -B -c <this file>`.
#
# Processes (all inside the sandbox's pid namespace):
#   J (judge, this process, pid 1 of the namespace): reads the job from fd 3, runs the
#       TRUSTED test code, and sends one record per test to the supervisor over fd 4 (a
#       SOCK_SEQPACKET socket; the supervisor accepts records only from J's pid, checked
#       by the kernel with SCM_CREDENTIALS). J never executes candidate code.
#   Z (zygote): forked by J before the job is read, so it never holds the tests or their
#       expected values. It receives the program text and forks candidate processes.
#   C (candidate): runs the program in fresh globals and answers remote calls from J.
#       The tests run one after another against the same C while they pass; after any
#       test that fails, raises, times out or ends C, Z kills C (and every other process
#       of the run but J and Z) and forks a fresh one, so one bad test cannot cost the
#       others. With the job's "fresh_per_test" every test gets a fresh C.
#       Everything C returns is decoded by J into plain builtin values (exact types: no
#       subclasses, no rigged __eq__/__bool__); anything else is an opaque handle that
#       refuses comparison and truth testing.
# A candidate can therefore only choose which plain values its functions return; it
# cannot see the tests, cannot reach the record socket and cannot influence how a result
# is compared. See docs/sandbox.md.
#
# Start-up cost matters (one judge per completion): J imports only the interpreter's C
# modules (posix, _socket, select, _signal, _json, _ast, gc, time); JSON goes through the same C
# scanner and encoder that json.loads/json.dumps use, without the json package (whose
# `re` import alone costs more than the interpreter start).
import posix, sys, time, builtins, gc, select, _ast, _signal, _socket

MAXMSG = 16 << 20
ZREPLY = 32  # bytes of a zygote reply: b'STATUS PID' padded

try:
    import _json

    class _JsonCtx:  # the attributes json.JSONDecoder hands to the C scanner
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = {'NaN': float('nan'), 'Infinity': float('inf'),
                          '-Infinity': float('-inf')}.__getitem__
        memo = None

    _scan = _json.make_scanner(_JsonCtx())

    def _nojson(o):
        raise TypeError('not JSON serializable')

    _encode = _json.make_encoder(None, _nojson, _json.encode_basestring_ascii, None, ':', ',',
                                 False, False, True)

    def _dumps(obj):
        return ''.join(_encode(obj, 0))

    def _loads(data):
        # Same C scanner as json.loads; anything malformed (including errors the scanner
        # reports oddly without the json package loaded) is a ValueError.
        try:
            s = data.decode('utf-8') if type(data) is not str else data
            obj, end = _scan(s, 0)
        except (StopIteration, SystemError, UnicodeDecodeError) as e:
            raise ValueError('malformed JSON') from None
        if end != len(s):
            raise ValueError('malformed JSON')
        return obj
except ImportError:  # another interpreter: the json package does the same, slower
    import json

    def _dumps(obj):
        return json.dumps(obj, allow_nan=True)

    _loads = json.loads


def _send(sock, obj):
    data = _dumps(obj).encode()
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
    return _loads(_recv_exact(sock, n, deadline))


def _closefrom(keep):
    posix.closerange(3, keep)
    posix.closerange(keep + 1, 1 << 16)


# ---------------------------------------------------------------- candidate side (C)
def _candidate_main(sock):
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

    try:
        # Forked before the judge has read the job (the first one) or right after a
        # clean-up: the program comes from the judge on this socket.
        program = _recv(sock)['program']
    except BaseException:
        posix._exit(0)
    g = {'__name__': '__candidate__', '__builtins__': builtins}
    stage = 'compile'
    try:
        code = compile(program, '<candidate>', 'exec')
        stage = 'run'
        exec(code, g)
    except BaseException as e:  # SystemExit included: the program ended before the tests
        if isinstance(e, SystemExit):
            posix._exit(0)
        try:
            # A compile error is deterministic: the judge need not load the program again.
            _send(sock, {'load_error': type(e).__name__, 'msg': str(e)[:200],
                         'compile': stage == 'compile' and isinstance(e, SyntaxError)})
        finally:
            posix._exit(0)
    _send(sock, {'ready': True})
    while True:
        try:
            req = _recv(sock)
        except BaseException:  # the judge is done with us (or sent garbage): end quietly
            posix._exit(0)
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
            posix._exit(0)
        except BaseException as e:
            try:
                out = {'exc': type(e).__name__, 'msg': str(e)[:200]}
            except BaseException:
                out = {'exc': 'Exception', 'msg': ''}
        try:
            _send(sock, out)
        except (MemoryError, RecursionError, ValueError, OverflowError, TypeError):
            _send(sock, {'exc': 'MemoryError', 'msg': 'result too large'})


# ---------------------------------------------------------------- zygote (Z)
_PREIMPORT = {'typing', 'math', 're', 'collections', 'itertools', 'functools', 'heapq',
              'string', 'bisect', 'random', 'copy', 'operator', 'fractions', 'decimal',
              'statistics', 'hashlib', 'cmath', 'datetime', 'array', 'sys', 'os'}


def _zygote_main(ctl, in_pidns):
    _closefrom(ctl.fileno())
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)

    def spawn():
        # A fresh candidate process; it waits for the program from the judge, so its
        # program load overlaps the judge's own work (planning, records).
        mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        pid = posix.fork()
        if pid == 0:
            ctl.close()
            mine.close()
            _closefrom(theirs.fileno())
            posix.setpgid(0, 0)
            gc.enable()
            _candidate_main(theirs)
            posix._exit(0)
        theirs.close()
        return pid, mine

    def reply(st, nxt):
        data = (b'%d %d' % (st, nxt[0] if nxt else 0)).ljust(ZREPLY)
        if nxt:
            ctl.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                  nxt[1].fileno().to_bytes(4, sys.byteorder))])
            nxt[1].close()
        else:
            ctl.sendall(data)

    # The first candidate, at once: the judge is still reading the job.
    reply(0, spawn())
    try:
        program = _recv(ctl)['program']  # only to know what to pre-import
    except BaseException:
        posix._exit(0)
    warm = [False]

    def preimport():
        # Before the first re-fork (a test failed): import the common stdlib modules the
        # program imports, once, so every later candidate fork has them. Not before: when
        # every test passes there is no second fork and the imports would be wasted.
        warm[0] = True
        mods = set()
        for line in program.split('\n'):
            w = line.replace(',', ' ').split()
            if len(w) >= 2 and w[0] in ('import', 'from'):
                mods.update(x.split('.')[0] for x in (w[1:2] if w[0] == 'from' else w[1:]))
        for m in _PREIMPORT & mods:
            try:
                __import__(m)
            except Exception:
                pass
        gc.freeze()

    while True:
        try:
            msg = ctl.recv(64)
        except OSError:
            posix._exit(0)
        if not msg:
            posix._exit(0)
        _, pid, want_next = msg.split()
        pid = int(pid)
        try:
            posix.killpg(pid, _signal.SIGKILL)
        except OSError:
            pass
        try:
            posix.kill(pid, _signal.SIGKILL)
        except OSError:
            pass
        try:
            _, st = posix.waitpid(pid, 0)
        except ChildProcessError:
            st = -1
        if in_pidns:
            # Everything in the namespace except pid 1 (the judge) and us: daemons
            # that escaped the candidate's process group die here, before the next C.
            try:
                posix.kill(-1, _signal.SIGKILL)
            except OSError:
                pass
        try:
            while posix.waitpid(-1, posix.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if want_next == b'1' and not warm[0]:
            preimport()
        reply(st, spawn() if want_next == b'1' else None)


# ---------------------------------------------------------------- judge side (J)
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
    """J's side of one test's conversation with C (a fresh object, and deadline, per test:
    handles of an earlier test are not accepted by a later one)."""

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
        if type(r) is not dict:
            raise TypeError('malformed reply')
        if 'exc' in r:
            raise CandidateError(str(r['exc']), str(r.get('msg', '')))
        if 'v' not in r:
            raise TypeError('malformed reply')
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


# ---------------------------------------------------------------- test plan (trusted code)
def _parse(src, name):
    return compile(src, name, 'exec', _ast.PyCF_ONLY_AST)


def _walk(node):
    """Every AST node under node (node included), as a list."""
    AST = _ast.AST
    out = []
    todo = [node]
    while todo:
        n = todo.pop()
        out.append(n)
        for f in n._fields:
            v = getattr(n, f, None)
            if type(v) is list:
                for e in v:
                    if isinstance(e, AST):
                        todo.append(e)
            elif isinstance(v, AST):
                todo.append(v)
    return out


def _ast_names(node):
    Name = _ast.Name
    return {n.id for n in _walk(node) if type(n) is Name}


def _code_names(code):
    names = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        names.update(c.co_freevars)
        stack.extend(k for k in c.co_consts if hasattr(k, 'co_names'))
    return names


def _top_level_names(tree):
    """Names a module binds at top level; None when it does more than def/class/assign/
    import (then it must be executed to know)."""
    out = set()
    for st in tree.body:
        t = type(st)
        if t in (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef):
            out.add(st.name)
        elif t in (_ast.Import, _ast.ImportFrom):
            for a in st.names:
                out.add(a.asname or a.name.split('.')[0])
        elif t in (_ast.Assign, _ast.AnnAssign, _ast.AugAssign):
            out |= _ast_names(st)
        elif t is _ast.Expr and type(st.value) is _ast.Constant:
            pass  # docstrings
        else:
            return None
    return out


def _plan(job):
    """Split the trusted tests into independent test units: a list of (code, names) where
    names are the global names the unit reads. Trusted code only (the data set), never
    the candidate. Also decides whether the HumanEval prompt (helpers some checks call)
    must be executed in the tests' globals."""
    units = []
    Name, Assert = _ast.Name, _ast.Assert
    if job['format'] == 'humaneval':
        tree = _parse(job['check'], '<tests>')
        chk = [n for n in tree.body if type(n) is _ast.FunctionDef and n.name == 'check']
        if len(chk) != 1 or not chk[0].args.args:
            raise ValueError('test code does not define check(candidate)')
        chk = chk[0]
        cand = chk.args.args[0].arg
        live = {cand, job['entry_point']}
        rest = [n for n in tree.body if n is not chk]
        base = _ast_names(chk.args)  # names every unit's module holds: rest + the arguments
        for st in rest:
            base |= _ast_names(st)
        kinds, names = [], []
        for st in chk.body:
            nodes = _walk(st)
            nm = {n.id for n in nodes if type(n) is Name}
            kinds.append(bool(nm & live) and any(type(n) is Assert for n in nodes))
            names.append(nm)
        for i, is_test in enumerate(kinds):
            if not is_test:
                continue
            pick = [j for j in range(len(kinds)) if (j < i and not kinds[j]) or j == i]
            fn = _ast.FunctionDef(name='__srlm_check', args=chk.args,
                                  body=[chk.body[j] for j in pick],
                                  decorator_list=[], returns=None, type_comment=None,
                                  lineno=chk.lineno, col_offset=chk.col_offset,
                                  end_lineno=chk.end_lineno, end_col_offset=chk.end_col_offset)
            code = compile(_ast.Module(body=rest + [fn], type_ignores=[]), '<tests>', 'exec')
            used = set(base)
            for j in pick:
                used |= names[j]
            units.append((code, _code_names(code) & used))
        if not units:  # a check() with no recognisable assert: run it whole as one test
            code = compile(tree, '<tests>', 'exec')
            units.append((code, _code_names(code) & _ast_names(tree)))
    else:
        for t in job['tests']:
            tree = _parse(t, '<tests>')
            code = compile(tree, '<tests>', 'exec')
            units.append((code, _code_names(code) & _ast_names(tree)))
    job['_setup_code'] = None
    setup_names = set()
    if job.get('setup'):
        tree = _parse(job['setup'], '<setup>')
        job['_setup_code'] = compile(tree, '<setup>', 'exec')
        setup_names = _code_names(job['_setup_code']) & _ast_names(tree)
    # The HumanEval prompt is trusted data: its helper functions (poly, encode_cyclic, ...)
    # are used by some checks. Executing it costs imports (typing): only when a test
    # reads a name it defines.
    job['_prompt_code'] = None
    if job['format'] == 'humaneval' and job.get('prompt'):
        try:
            ptree = _parse(job['prompt'], '<prompt>')
            defined = _top_level_names(ptree)
        except SyntaxError:
            ptree, defined = None, None
        used = set(setup_names)
        for _, nm in units:
            used |= nm
        if defined is None or (defined - {job['entry_point']}) & used:
            job['_prompt_code'] = compile(ptree if ptree is not None else job['prompt'],
                                          '<prompt>', 'exec')
    job['_setup_names'] = setup_names
    return units


def _stdlib_module(name):
    if name not in sys.stdlib_module_names:
        return None
    try:
        return __import__(name)
    except Exception:
        return None


def _bind_free(ns, names, rc, remote_names):
    for n in names:
        if n in ns or (n in builtins.__dict__ and n not in remote_names):
            continue
        m = None if n in remote_names else _stdlib_module(n)
        ns[n] = m if m is not None else Remote(rc, {'n': n})


def _run_unit(job, unit, rc):
    code, names = unit
    ns = {'__name__': '__srlm_tests__', '__builtins__': builtins}
    entry = job.get('entry_point') or ''
    if job['_prompt_code'] is not None:
        exec(job['_prompt_code'], ns)
        ns.pop(entry, None)
    remote = job['remote_names']
    if job['_setup_code'] is not None:
        _bind_free(ns, job['_setup_names'], rc, remote)
        exec(job['_setup_code'], ns)
    _bind_free(ns, names, rc, remote)
    exec(code, ns)
    if '__srlm_check' in ns:
        ns['__srlm_check'](Remote(rc, {'n': entry}))
    elif 'check' in ns and job['format'] == 'humaneval':
        ns['check'](Remote(rc, {'n': entry}))


def _status_of(st):
    if st < 0:
        return 'exit', 0
    if posix.WIFSIGNALED(st):
        sig = posix.WTERMSIG(st)
        if sig == _signal.SIGSYS:
            return 'sec', sig
        if sig == _signal.SIGXCPU:
            return 'timeout', sig
        if sig == _signal.SIGXFSZ:
            return 'ole', sig
        return 'signal', sig
    return 'exit', 0


def _clean_text(s):
    # Records are parsed by jansson, which refuses lone surrogates (\ud800): a candidate's
    # exception message must not be able to turn its run into an infrastructure error.
    return s.encode('utf-8', 'replace').decode('utf-8')


def main():
    try:
        posix.stat('/proc/self/mem')
        # /proc is visible (degraded mode): forbid same-uid reads of our memory.
        try:
            import ctypes
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
        except Exception:
            pass
    except OSError:
        pass
    rec = _socket.socket(fileno=4)
    in_pidns = posix.getpid() == 1
    ctl, zctl = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    # Fewer copy-on-write faults after fork: the cyclic GC of J and Z would walk (and so
    # write to) every object the forks share. J and Z create few cycles and live briefly;
    # C turns the GC back on before it loads the program (the candidate's semantics).
    gc.disable()
    gc.freeze()
    zpid = posix.fork()
    if zpid == 0:
        ctl.close()
        rec.detach()
        _zygote_main(zctl, in_pidns)
        posix._exit(0)
    zctl.close()
    chunks = []
    while True:
        b = posix.read(3, 1 << 20)
        if not b:
            break
        chunks.append(b)
    posix.close(3)
    job = _loads(b''.join(chunks))

    def record(obj):
        rec.send(_dumps(obj).encode())

    def zrecv():
        """The zygote's reply: (status, next pid, next socket or None)."""
        data, anc, _, _ = ctl.recvmsg(ZREPLY, _socket.CMSG_SPACE(4))
        fds = [int.from_bytes(d[:4], sys.byteorder) for lvl, typ, d in anc
               if lvl == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS and len(d) >= 4]
        while data and len(data) < ZREPLY:
            more = ctl.recv(ZREPLY - len(data))
            if not more:
                break
            data += more
        if len(data) < ZREPLY:
            for fd in fds:
                posix.close(fd)
            raise ZygoteGone()
        st, npid = (int(x) for x in data.split())
        return st, npid, (_socket.socket(fileno=fds[0]) if fds else None)

    prog_msg = _dumps({'program': job['program']}).encode()
    prog_msg = len(prog_msg).to_bytes(4, 'little') + prog_msg

    def zreq(msg):
        ctl.sendall(msg)
        st, npid, nsock = zrecv()
        if nsock is not None:
            give_program(nsock)
        return st, npid, nsock

    def give_program(c):
        try:
            c.sendall(prog_msg)
        except OSError:
            pass  # the candidate is gone: its test says so

    zygote_dead = False
    cpid, sock = 0, None
    try:
        _send(ctl, {'program': job['program']})
        _, cpid, sock = zrecv()  # the first candidate, forked while we read the job
        if sock is not None:
            give_program(sock)
    except (ZygoteGone, OSError):
        zygote_dead = True

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
        record({'kind': 'harness_error', 'msg': _clean_text('%s: %s' % (type(e).__name__, e))})
        return
    n = len(units)
    record({'kind': 'plan', 'n': n})
    timeout = float(job.get('timeout', 5.0))
    fresh_each = bool(job.get('fresh_per_test'))

    compile_error = None  # (name, msg): the program does not compile; no C can answer
    loaded = False
    for i, unit in enumerate(units):
        t0 = time.monotonic()
        status, sig, msg = 'pass', 0, ''
        if compile_error is not None:
            record({'kind': 'test', 'i': i, 'status': 'error', 'sig': 0, 'ms': 0.0,
                    'msg': compile_error})
            continue
        if zygote_dead or sock is None:
            if not zygote_dead:
                zygote_dead = True
                record({'kind': 'tamper', 'msg': 'zygote gone before test %d' % i})
            record({'kind': 'test', 'i': i, 'status': 'sec', 'sig': 0, 'ms': 0.0,
                    'msg': 'the candidate killed the sandbox zygote'})
            continue
        try:
            rc = RemoteConn(sock, t0 + timeout)
            if not loaded:
                hello = rc.recv()
                if type(hello) is not dict or 'ready' not in hello:
                    if type(hello) is dict and 'load_error' in hello:
                        e = CandidateError(str(hello['load_error']), str(hello.get('msg', '')))
                        if hello.get('compile') is True:
                            compile_error = _clean_text(str(e)[:200])
                        raise e
                    raise TypeError('malformed reply')
                loaded = True
            _run_unit(job, unit, rc)
        except AssertionError:
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
        last = i + 1 == n
        if status != 'pass' or fresh_each or last:
            # End this candidate: kill it and everything it started, learn how it ended,
            # and (more tests to run) get a fresh one. Also how a killed zygote shows.
            want = not last and compile_error is None
            old_sock = sock
            try:
                st, cpid, sock = zreq(b'wait %d %d' % (cpid, 1 if want else 0))
                loaded = False
            except (ZygoteGone, OSError):
                # Only the candidate can have killed the zygote: an escape attempt.
                zygote_dead = True
                sock = None
                record({'kind': 'tamper', 'msg': 'zygote killed during test %d' % i})
                status, msg, st = 'sec', 'the candidate killed the sandbox zygote', -1
            old_sock.close()  # after the kill: C never sees an EOF to react to
            if status in ('exit', 'error', 'timeout'):
                s2, sig = _status_of(st)
                if s2 != 'exit' and not (s2 == 'signal' and sig == _signal.SIGKILL):
                    status = s2
            try:
                while True:
                    pid, _ = posix.waitpid(-1, posix.WNOHANG)  # orphans re-parented to us
                    if pid <= 0:
                        break
            except ChildProcessError:
                pass
        record({'kind': 'test', 'i': i, 'status': status, 'sig': sig,
                'ms': round((time.monotonic() - t0) * 1000, 3), 'msg': _clean_text(msg)})
    record({'kind': 'done'})


main()
posix._exit(0)  # records are sent (SOCK_SEQPACKET send is synchronous): skip finalization
