# The warm Python of a sandbox slot (`full` mode): see zygote.ts and docs/sandbox.md#the-python-zygote.
#
# Started by the runner, as root, inside the slot's namespaces (network, IPC, UTS, mount, PID; the slot's mount
# layout already applied), as `python -E -s -S -c <this file> <config json>`. It runs no user code. For each
# request it forks the sample's init into a fresh PID namespace (PID 1 there), which unshares a fresh set of the
# others (net, IPC, UTS, mount), mounts a fresh /proc and fresh tmpfs over /tmp, /dev/shm and the other
# private dirs, then forks the program: its own session, cwd, rlimits, the slot's uid and gid, no groups, no
# capabilities, no_new_privs, then the sample's main file as __main__. stdout and stderr come back through
# pipes that this process relays to the runner; the runner asks for a kill at its timeout, and the kill (SIGKILL
# of the sample's init) ends the sample's whole PID namespace.
#
# Wire format. In (fd 0): one JSON object a line, a request {id, work, uid, gid, env, stdin, main, path,
# rlimits, mounts} or {kill: id}. Out (fd 1): frames of a type byte, the request id (u32, big-endian),
# a length (u32) and that many bytes: R ready (json), O stdout, E stderr, X exit (json {code, signal, survivors: processes of the
# slot's uid found, and killed, after the sample's init was reaped}),
# F the request failed in the sandbox itself (text).
import ctypes
import gc
import json
import os
import pkgutil  # noqa: F401 - what runpy.run_path imports on its first call (re, typing, enum...): once, here
import resource
import runpy
import select
import signal
import struct
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x1, 0x2, 0x4, 0x8, 0x20, 0x1000, 0x4000, 0x40000
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
SETUP_FAILED = 'kiln-sandbox: setup failed'
RLIMITS = {'cpu': resource.RLIMIT_CPU, 'as': resource.RLIMIT_AS, 'data': resource.RLIMIT_DATA, 'fsize': resource.RLIMIT_FSIZE,
           'nproc': resource.RLIMIT_NPROC, 'nofile': resource.RLIMIT_NOFILE, 'core': resource.RLIMIT_CORE}

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f'{what}: {os.strerror(e)}')


def mount(source, target, fstype, flags, data=None):
    check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode() if data else None), f'mount {target}')


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def frame(kind, rid, payload=b''):
    write_all(1, struct.pack('>cII', kind, rid, len(payload)) + payload)


def drop_privileges(uid, gid):
    """Root to the slot's uid for good: no bounding set, no groups, no capabilities of any set, no_new_privs."""
    with open('/proc/sys/kernel/cap_last_cap') as f:
        last = int(f.read())
    for cap in range(last + 1):
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), 'drop the bounding set')
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # setuid away from root clears the permitted and effective sets, not the inheritable one.
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(header, data), 'capset')
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 'no_new_privs')


def fail_setup(message):
    try:
        write_all(2, f'{SETUP_FAILED}: {message}\n'.encode())
    finally:
        os._exit(125)


def run_program(req, base_path):
    """The sample itself (a fork of the pristine zygote): isolation first, then the main file as __main__."""
    try:
        os.setsid()
        os.chdir(req['work'])
        for name, (soft, hard) in req['rlimits'].items():
            resource.setrlimit(RLIMITS[name], (soft, hard))
        drop_privileges(req['uid'], req['gid'])
        for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.environ.clear()
        os.environ.update(req['env'])
    except Exception as e:  # noqa: BLE001 - whatever failed, the sample must not run
        fail_setup(f'{type(e).__name__}: {e}')
    sys.stdin = sys.__stdin__ = open(0, 'r', encoding='utf-8', closefd=False)
    sys.stdout = sys.__stdout__ = open(1, 'w', encoding='utf-8', errors='strict', closefd=False)
    sys.stderr = sys.__stderr__ = open(2, 'w', encoding='utf-8', errors='backslashreplace', closefd=False, buffering=1)
    sys.argv = [req['main']]
    sys.path[:] = ['', *base_path, *req['path']]
    code = 0
    try:
        runpy.run_path(req['main'], run_name='__main__')
    except SystemExit as e:
        code = exit_code(e.code)
    except BaseException:  # noqa: BLE001 - as the interpreter does: print the traceback, exit 1
        sys.excepthook(*sys.exc_info())
        code = 1
    code = shutdown(code)
    os._exit(code)


def exit_code(c):
    if c is None:
        return 0
    if isinstance(c, int):
        return c & 0xFF
    try:
        print(c, file=sys.stderr)
    except Exception:  # noqa: BLE001
        pass
    return 1


def shutdown(code):
    """What the interpreter does at exit that a fork's os._exit skips: wait for threads, atexit, flush."""
    try:
        threading = sys.modules.get('threading')
        if threading is not None:
            threading._shutdown()
        import atexit
        atexit._run_exitfuncs()
    except SystemExit as e:
        code = exit_code(e.code)
    except BaseException:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream: the interpreter reports 120
            code = code or 120
    return code


def sample_init(req, fds, base_path):
    """PID 1 of the sample's namespaces: the rest of them, fresh /proc and tmpfs, then the program; exits with its status."""
    try:
        check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), 'unshare')
        mount('none', '/', None, MS_REC | MS_PRIVATE)
        mount('proc', '/proc', 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for op in req['mounts']:
            if op['kind'] == 'tmpfs':
                mount('kiln-tmp', op['target'], 'tmpfs', MS_NOSUID | MS_NODEV, f"size={op['size']},mode={op['mode']}")
            elif op.get('optional') and not os.path.isdir(op['source']):
                continue  # an exposed directory removed since (nofail in the fstab)
            else:
                os.makedirs(op['target'], 0o755, exist_ok=True)
                mount(op['source'], op['target'], None, MS_BIND)
                if op['readOnly']:
                    mount('none', op['target'], None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    except BaseException as e:  # noqa: BLE001 - the sample must not run
        os.dup2(fds['err'], 2)
        fail_setup(str(e))
    pid = os.fork()
    if pid == 0:
        os.dup2(fds['in'], 0)
        os.dup2(fds['out'], 1)
        os.dup2(fds['err'], 2)
        os.closerange(3, 1 << 20)
        run_program(req, base_path)
    os.closerange(0, 1 << 20)
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(125)
        if got == pid:
            # As a shell reports it: 128 + n for a signal. Leaving ends every process left in the namespace.
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


class Sample:
    def __init__(self, rid, uid, init_pid, out_r, err_r, in_w, stdin):
        self.rid, self.uid, self.init_pid, self.out_r, self.err_r, self.in_w, self.stdin = rid, uid, init_pid, out_r, err_r, in_w, stdin
        self.open = {out_r, err_r}
        self.status = None
        self.pidfd = os.pidfd_open(init_pid)


def start(req, base_path, own_pid_ns):
    """Forks the sample's init into a fresh PID namespace (then the zygote's children go back to its own)."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    if req.get('stdin') is not None:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(in_w, False)
    else:
        in_r, in_w = os.open('/dev/null', os.O_RDONLY | os.O_CLOEXEC), None
    try:
        check(libc.unshare(CLONE_NEWPID), 'unshare a PID namespace')
        # The zygote's objects go to the permanent generation: the sample's collector never walks them, so their
        # pages stay shared with the zygote instead of being copied on the first collection.
        gc.freeze()
        init = os.fork()
        if init == 0:
            sample_init(req, {'in': in_r, 'out': out_w, 'err': err_w}, base_path)
    except BaseException:
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, in_r):
            os.close(fd)
        # unshare(CLONE_NEWPID) moves only the children to come, and only once: back to the zygote's own.
        check(libc.setns(own_pid_ns, CLONE_NEWPID), 'setns back to the zygote\'s PID namespace')
    return Sample(req['id'], req['uid'], init, out_r, err_r, in_w, (req.get('stdin') or '').encode())


def slot_processes(uid):
    """Live processes of `uid` in the zygote's PID namespace, which holds every sample's namespace under it."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/status', 'rb') as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(b':', 1) for line in status.splitlines() if b':' in line)
        if fields.get(b'State', b'').strip()[:1] in (b'Z', b'X'):
            continue
        if int(fields.get(b'Uid', b'-1').split()[0]) == uid:
            found.append(int(entry))
    return found


def sweep(uid):
    """After a sample: none of its processes may survive (the kernel ends them with its init; this checks)."""
    first = slot_processes(uid)
    left = first
    for _ in range(50):
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)
        left = slot_processes(uid)
    return len(first)


def finish(s):
    for fd in (s.out_r, s.err_r, s.pidfd, *([s.in_w] if s.in_w is not None else [])):
        try:
            os.close(fd)
        except OSError:
            pass
    code, sig = (os.WEXITSTATUS(s.status), None) if os.WIFEXITED(s.status) else (None, os.WTERMSIG(s.status))
    frame(b'X', s.rid, json.dumps({'code': code, 'signal': sig, 'survivors': sweep(s.uid)}).encode())


def main():
    config = json.loads(sys.argv[1])
    for name in config.get('preload', []):
        __import__(name)
    base_path = [p for p in sys.path if p]
    own_pid_ns = os.open('/proc/self/ns/pid', os.O_RDONLY | os.O_CLOEXEC)
    frame(b'R', 0, json.dumps({'pid': os.getpid(), 'python': sys.version.split()[0]}).encode())
    pending = b''
    current = None
    while True:
        rlist = [0]
        wlist = []
        if current:
            rlist += [*current.open, current.pidfd] if current.status is None else [*current.open]
            if current.in_w is not None and current.stdin:
                wlist.append(current.in_w)
        ready_r, ready_w, _ = select.select(rlist, wlist, [])
        if 0 in ready_r:
            chunk = os.read(0, 65536)
            if not chunk:
                # The runner is gone: end the sample (its namespace goes with its init) and this process.
                if current:
                    os.kill(current.init_pid, signal.SIGKILL)
                return
            pending += chunk
            while b'\n' in pending:
                line, pending = pending.split(b'\n', 1)
                msg = json.loads(line)
                if 'kill' in msg:
                    if current and current.rid == msg['kill'] and current.status is None:
                        try:
                            os.kill(current.init_pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                elif current:
                    frame(b'F', msg['id'], b'a sample is already running in this zygote')
                else:
                    try:
                        current = start(msg, base_path, own_pid_ns)
                    except OSError as e:
                        frame(b'F', msg['id'], str(e).encode())
        if not current:
            continue
        for fd, kind in ((current.out_r, b'O'), (current.err_r, b'E')):
            if fd in ready_r and fd in current.open:
                data = os.read(fd, 65536)
                if data:
                    frame(kind, current.rid, data)
                else:
                    current.open.discard(fd)
        if current.in_w is not None and current.in_w in ready_w:
            try:
                current.stdin = current.stdin[os.write(current.in_w, current.stdin[:65536]):]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                current.stdin = b''
            if not current.stdin:
                os.close(current.in_w)
                current.in_w = None
        if current.status is None and current.pidfd in ready_r:
            # The init has ended, and with it every process of the sample's PID namespace.
            _, current.status = os.waitpid(current.init_pid, 0)
        if current.status is not None and not current.open:
            finish(current)
            current = None


main()
