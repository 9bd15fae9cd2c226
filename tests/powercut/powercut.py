#!/usr/bin/env python3
"""powercut.py - the power-cut simulator's replayer: from the log the shim
(shim.so) wrote, a snapshot of the watched directory taken before the
run, and a cut point, the directories a power cut at that point may
leave. tests/powercut/README.md describes the model.

  powercut.py snapshot ROOT SNAP     copy ROOT (files, directories) and
                                     note each one's inode (SNAP/manifest.json)
  powercut.py mark LOG TEXT          append an acknowledgement to LOG
  powercut.py dump LOG               the records, one a line
  powercut.py state LOG SNAP CUT OUT [--mode drop|keep|random] [--seed N]
                                     one post-crash state in OUT; CUT is a
                                     record index (records before it
                                     happened) or "end"
  powercut.py explore LOG SNAP [--after-mark TEXT] [--cuts all|sync]
                      [--points N] [--random N] [--seed S]
                      [--keep-failed DIR] -- CMD...
                                     every cut after the mark (or from the
                                     start; with --cuts sync, the syncs'
                                     and N more drawn at random), each in
                                     the modes drop, keep and N random
                                     ones; CMD STATE_DIR must exit 0 for a
                                     state (distinct states are checked
                                     once); exit 1 when one did not. CMD
                                     gets POWERCUT_CUT, POWERCUT_MODE,
                                     POWERCUT_MARKS (the marks before the
                                     cut) and POWERCUT_LAST_MARK (the
                                     last one's text) in its environment
"""
import bisect
import fcntl
import hashlib
import json
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import tempfile

HDR = struct.Struct('<IIHHIQqqIIQ')  # struct rec of shim.c
MAGIC = 0x54554350
OPS = {1: 'create', 2: 'mkdir', 3: 'rename', 4: 'link', 5: 'unlink', 6: 'rmdir',
       7: 'write', 8: 'trunc', 9: 'fsync', 10: 'syncall', 11: 'mark'}
FL_DIR, FL_DATAONLY = 1, 2
SECTOR = 512
DIR = 'dir'  # a directory's entry in a namespace


class Rec:
    __slots__ = ('i', 'pos', 'op', 'flags', 'pid', 'ino', 'off', 'size', 'p1', 'p2', 'data',
                 'begin')

    def describe(self):
        s = '%d pid %d %s' % (self.i, self.pid, self.op)
        if self.p1 or self.p2:
            s += ' ' + self.p1 + (' -> ' + self.p2 if self.op in ('rename', 'link') else '')
        if self.op == 'write':
            s += ' @%d +%d' % (self.off, len(self.data))
        elif self.op == 'trunc':
            s += ' to %d' % self.size
        elif self.op == 'fsync':
            s += ' (%s%s; of records before %d)' % (
                'directory' if self.flags & FL_DIR else 'file',
                ', data' if self.flags & FL_DATAONLY else '', self.begin)
        elif self.op == 'syncall':
            s += ' (of records before %d)' % self.begin
        elif self.op == 'mark':
            s += ' ' + repr(self.data.decode('utf-8', 'replace'))
        return s


def read_log(path):
    with open(path, 'rb') as f:
        buf = f.read()
    recs, pos = [], 0
    while pos + HDR.size <= len(buf):
        (magic, reclen, op, flags, pid, ino, off, size, l1, l2,
         dlen) = HDR.unpack_from(buf, pos)
        if magic != MAGIC or reclen != HDR.size + l1 + l2 + dlen:
            sys.exit('powercut: %s: no record at byte %d: the log is damaged' % (path, pos))
        if pos + reclen > len(buf):
            print('powercut: warning: %s ends in a partial record' % path, file=sys.stderr)
            break
        r = Rec()
        r.i, r.pos, r.op, r.flags, r.pid, r.ino, r.off, r.size = (
            len(recs), pos, OPS.get(op, 'op%d' % op), flags, pid, ino, off, size)
        p = pos + HDR.size
        r.p1 = buf[p:p + l1].decode('utf-8', 'surrogateescape')
        r.p2 = buf[p + l1:p + l1 + l2].decode('utf-8', 'surrogateescape')
        r.data = buf[p + l1 + l2:pos + reclen]
        recs.append(r)
        pos += reclen
    # a sync covers the records before the byte where the log ended when
    # it began (off): their index
    starts = [r.pos for r in recs]
    for r in recs:
        if r.op in ('fsync', 'syncall'):
            r.begin = bisect.bisect_left(starts, r.off) if r.off >= 0 else r.i
    return recs


def parent(path):
    return os.path.dirname(path) or '.'


# ---- snapshot and mark ----------------------------------------------------

def snapshot(root, snap):
    tree = os.path.join(snap, 'tree')
    os.makedirs(tree)
    man = {'files': {}, 'dirs': {}}
    for d, dirs, files in os.walk(root):
        for name in sorted(dirs) + sorted(files):
            src = os.path.join(d, name)
            rel = os.path.relpath(src, root)
            st = os.lstat(src)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(os.path.join(tree, rel))
                man['dirs'][rel] = st.st_ino
            elif stat.S_ISREG(st.st_mode):
                shutil.copyfile(src, os.path.join(tree, rel))
                man['files'][rel] = st.st_ino
            # sockets, FIFOs and symbolic links hold no data to lose
    with open(os.path.join(snap, 'manifest.json'), 'w') as f:
        json.dump(man, f)


def mark(log, text):
    data = text.encode()
    rec = HDR.pack(MAGIC, HDR.size + len(data), 11, 0, os.getpid(), 0, 0, 0, 0, 0,
                   len(data)) + data
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the shim does
        os.write(fd, rec)
    finally:
        os.close(fd)


# ---- the model ------------------------------------------------------------

class Obj:
    """a file (an inode): what a sync made durable, and what came after"""

    def __init__(self, data=b'', named=True):
        self.disk = bytes(data)
        self.pending = []  # (record index, ('w', off, data) or ('t', size))
        self.size = len(data)  # as the programs see it
        self.named = named  # False: first met in a write, not a create

    def note_size(self, op):
        if op[0] == 'w':
            self.size = max(self.size, op[1] + len(op[2]))
        else:
            self.size = op[1]


def apply(buf, op):
    if op[0] == 't':
        if op[1] <= len(buf):
            del buf[op[1]:]
        else:
            buf.extend(bytes(op[1] - len(buf)))
    else:
        off, data = op[1], op[2]
        if off > len(buf):
            buf.extend(bytes(off - len(buf)))
        buf[off:off + len(data)] = data


class NsOp:
    __slots__ = ('kind', 'p1', 'p2', 'obj', 'dirs', 'synced', 'durable', 'i')


class Model:
    def __init__(self, snap):
        with open(os.path.join(snap, 'manifest.json')) as f:
            man = json.load(f)
        self.ns0 = {}
        self.inos = {}
        self.objs = []  # in order of appearance: random draws repeat by seed
        for rel in sorted(man['dirs']):
            self.ns0[rel] = DIR
        for rel, ino in sorted(man['files'].items()):
            with open(os.path.join(snap, 'tree', rel), 'rb') as f:
                o = self.new_obj(ino, f.read())
            self.ns0[rel] = o
        self.nsops = []
        self.warned = set()

    def new_obj(self, ino, data=b'', named=True):
        o = Obj(data, named)
        self.objs.append(o)
        self.inos[ino] = o
        return o

    def warn(self, key, msg):
        if key not in self.warned:
            self.warned.add(key)
            print('powercut: warning: ' + msg, file=sys.stderr)

    def obj(self, r):
        o = self.inos.get(r.ino)
        if o is None:
            self.warn(('ino', r.ino), 'record %d: %s of %s, a file neither in the snapshot '
                      'nor created under the shim: taken as empty before' % (r.i, r.op, r.p1))
            o = self.new_obj(r.ino, named=False)
        return o

    def nsop(self, r, kind, p1, p2=None, obj=None):
        n = NsOp()
        n.kind, n.p1, n.p2, n.obj, n.i = kind, p1, p2, obj, r.i
        n.dirs = {parent(p) for p in (p1, p2) if p}
        n.synced, n.durable = set(), False
        self.nsops.append(n)

    def step(self, r):
        """record r happened (in the programs' view)"""
        if r.op == 'create':
            o = self.inos.get(r.ino)
            if o is None or o.named:  # an inode number used again
                o = self.new_obj(r.ino)
            o.named = True
            self.nsop(r, 'bind', r.p1, obj=o)
        elif r.op == 'mkdir':
            self.nsop(r, 'bind', r.p1, obj=DIR)
        elif r.op == 'rename':
            if r.p1 and r.p2:
                self.nsop(r, 'rename', r.p1, r.p2)
            elif r.p1:  # moved out of the root
                self.nsop(r, 'unbind', r.p1)
            else:
                self.nsop(r, 'bind', r.p2, obj=self.obj(r))
        elif r.op == 'link':
            self.nsop(r, 'bind', r.p2, obj=self.obj(r))
        elif r.op in ('unlink', 'rmdir'):
            self.nsop(r, 'unbind', r.p1)
        elif r.op in ('write', 'trunc'):
            o = self.obj(r)
            op = ('w', r.off, r.data) if r.op == 'write' else ('t', r.size)
            o.pending.append((r.i, op))
            o.note_size(op)
        elif r.op == 'fsync' and r.flags & FL_DIR:
            for n in self.nsops:
                if not n.durable and r.p1 in n.dirs and n.i < r.begin:
                    n.synced.add(r.p1)
                    n.durable = n.synced >= n.dirs
        elif r.op == 'fsync':
            # fsync and fdatasync alike: the data and the size
            o = self.obj(r)
            self.make_durable(o, r.begin)
            if o.size != r.size:
                self.warn(('size', id(o)), 'record %d: %s has %d bytes, the log accounts '
                          'for %d: it was written in a way the shim does not see (stdio, '
                          'mmap)' % (r.i, r.p1, r.size, o.size))
                o.size = r.size
        elif r.op == 'syncall':
            for o in self.objs:
                self.make_durable(o, r.begin)
            for n in self.nsops:
                n.durable = n.durable or n.i < r.begin

    @staticmethod
    def make_durable(o, begin):
        done = [op for i, op in o.pending if i < begin]
        if done:
            buf = bytearray(o.disk)
            for op in done:
                apply(buf, op)
            o.disk = bytes(buf)
            o.pending = [(i, op) for i, op in o.pending if i >= begin]

    # ---- a post-crash state --------------------------------------------

    def crash(self, mode, rng):
        """a {path: DIR or bytes} a power cut now may leave"""
        def keep():
            return mode == 'keep' or (mode == 'random' and rng.random() < 0.5)

        ns = dict(self.ns0)
        stopped = set()
        for n in self.nsops:
            if not n.durable:
                # per directory, the surviving pending operations are a
                # prefix of its own: none survives one lost before it
                if n.dirs & stopped or not keep():
                    stopped |= n.dirs
                    continue
            ns_apply(ns, n)
        contents = {}
        live = {id(v) for v in ns.values() if v is not DIR}
        for o in self.objs:
            if id(o) in live:
                contents[id(o)] = self.content(o, mode, rng)
        out = {}
        for path in sorted(ns, key=lambda p: (p.count('/'), p)):
            if parent(path) != '.' and out.get(parent(path)) is not DIR:
                continue  # its directory was never made durable
            v = ns[path]
            out[path] = DIR if v is DIR else contents[id(v)]
        return out

    @staticmethod
    def content(o, mode, rng):
        buf = bytearray(o.disk)
        for _, op in o.pending:
            if mode == 'keep':
                apply(buf, op)
            elif mode == 'random':
                x = rng.random()
                if op[0] == 'w' and x >= 2 / 3:
                    # torn: the first sectors of it (512-byte boundaries of the file)
                    off, data = op[1], op[2]
                    cuts = [b - off for b in range((off // SECTOR + 1) * SECTOR,
                                                  off + len(data), SECTOR)]
                    if cuts:
                        apply(buf, ('w', off, data[:rng.choice(cuts)]))
                    elif x >= 5 / 6:
                        apply(buf, op)
                elif x < 1 / 3 or (op[0] == 't' and x < 1 / 2):
                    apply(buf, op)
        return bytes(buf)


def ns_apply(ns, n):
    if n.kind == 'bind':
        ns[n.p1] = n.obj
    elif n.kind == 'unbind':
        ns.pop(n.p1, None)
        for p in [p for p in ns if p.startswith(n.p1 + '/')]:
            del ns[p]
    elif n.kind == 'rename':
        if n.p1 not in ns:
            return
        moved = {p: v for p, v in ns.items() if p == n.p1 or p.startswith(n.p1 + '/')}
        for p in list(ns):
            if p == n.p2 or p.startswith(n.p2 + '/'):
                del ns[p]
        for p, v in moved.items():
            del ns[p]
        for p, v in moved.items():
            ns[n.p2 + p[len(n.p1):]] = v


def digest(state):
    h = hashlib.sha256()
    for p in sorted(state):
        v = state[p]
        h.update(p.encode('utf-8', 'surrogateescape') + b'\0')
        h.update(b'D' if v is DIR else hashlib.sha256(v).digest())
    return h.hexdigest()


def write_state(state, out):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    for p in sorted(state, key=lambda p: (p.count('/'), p)):
        dst = os.path.join(out, p)
        if state[p] is DIR:
            os.mkdir(dst, 0o700)
        else:
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'wb') as f:
                f.write(state[p])


def cut_index(recs, cut):
    if cut == 'end':
        return len(recs)
    k = int(cut)
    if not 0 <= k <= len(recs):
        sys.exit('powercut: cut %d is outside the log (0..%d)' % (k, len(recs)))
    return k


def cmd_state(log, snap, cut, out, mode, seed):
    recs = read_log(log)
    k = cut_index(recs, cut)
    m = Model(snap)
    for r in recs[:k]:
        m.step(r)
    write_state(m.crash(mode, random.Random(seed)), out)


def cmd_explore(log, snap, after_mark, cuts, npoints, nrandom, seed, keep_failed, cmd):
    recs = read_log(log)
    start = 0
    if after_mark is not None:
        marks = [r.i for r in recs if r.op == 'mark' and
                 r.data.decode('utf-8', 'replace').strip() == after_mark]
        if not marks:
            sys.exit('powercut: no mark "%s" in %s' % (after_mark, log))
        start = marks[0] + 1
    points = []
    for k in range(start, len(recs) + 1):
        if (cuts == 'all' or k in (start, len(recs)) or recs[k].op in ('fsync', 'syncall')):
            points.append(k)
    # random cuts between the syncs: a state mid-way through a write
    # sequence, which the sync cuts alone may not reach
    others = sorted(set(range(start, len(recs) + 1)) - set(points))
    rng = random.Random('points/%d' % seed)
    points = sorted(points + rng.sample(others, min(npoints, len(others))))
    m = Model(snap)
    marks = []  # the texts of the marks before the cut
    seen = set()
    nstates = violations = 0
    scratch = tempfile.mkdtemp(prefix='powercut.')
    try:
        k = 0
        for point in points:
            while k < point:
                m.step(recs[k])
                if recs[k].op == 'mark':
                    marks.append(recs[k].data.decode('utf-8', 'replace').strip())
                k += 1
            env = dict(os.environ, POWERCUT_CUT=str(point), POWERCUT_MARKS=str(len(marks)),
                       POWERCUT_LAST_MARK=marks[-1] if marks else '')
            modes = [('drop', 0), ('keep', 0)] + [('random', s) for s in range(1, nrandom + 1)]
            for mode, n in modes:
                # seed 1 draws what this tool drew before it took a seed
                state = m.crash(mode, random.Random(
                    '%d/%d' % (point, n) if seed == 1 else '%d/%d/%d' % (seed, point, n)))
                nstates += 1
                # a state seen before is checked again only when more
                # marks precede it: the check may ask more of it then
                d = (digest(state), len(marks))
                if d in seen:
                    continue
                seen.add(d)
                out = os.path.join(scratch, 'state')
                write_state(state, out)
                env['POWERCUT_MODE'] = mode if mode != 'random' else 'random %d' % n
                sys.stdout.flush()
                if subprocess.call(cmd + [out], env=env) != 0:
                    violations += 1
                    if violations > 10:
                        continue  # counted, not each told
                    after = recs[point - 1].describe() if point else 'nothing'
                    print('violation: cut %d (after record %s), mode %s%s (POWERCUT_SEED=%d)' % (
                        point, after, mode, ' seed %d' % n if mode == 'random' else '', seed))
                    if keep_failed:
                        dst = os.path.join(keep_failed, 'cut%d-%s%d' % (point, mode, n))
                        shutil.copytree(out, dst)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print('seed %d' % seed)
    print('cuts %d, states %d, distinct %d, violations %d' % (
        len(points), nstates, len(seen), violations))
    return 1 if violations else 0


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog='powercut.py', description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('snapshot')
    p.add_argument('root')
    p.add_argument('snap')
    p = sub.add_parser('mark')
    p.add_argument('log')
    p.add_argument('text')
    p = sub.add_parser('dump')
    p.add_argument('log')
    p = sub.add_parser('state')
    p.add_argument('log')
    p.add_argument('snap')
    p.add_argument('cut')
    p.add_argument('out')
    p.add_argument('--mode', choices=('drop', 'keep', 'random'), default='random')
    p.add_argument('--seed', type=int, default=1)
    p = sub.add_parser('explore')
    p.add_argument('log')
    p.add_argument('snap')
    p.add_argument('--after-mark')
    p.add_argument('--cuts', choices=('all', 'sync'), default='all')
    p.add_argument('--points', type=int, default=0)
    p.add_argument('--random', type=int, default=8)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--keep-failed')
    check = []
    if '--' in argv:
        check = argv[argv.index('--') + 1:]
        argv = argv[:argv.index('--')]
    a = ap.parse_args(argv)
    if a.cmd == 'snapshot':
        snapshot(a.root, a.snap)
    elif a.cmd == 'mark':
        mark(a.log, a.text)
    elif a.cmd == 'dump':
        for r in read_log(a.log):
            print(r.describe())
    elif a.cmd == 'state':
        cmd_state(a.log, a.snap, a.cut, a.out, a.mode, a.seed)
    else:
        if not check:
            ap.error('explore needs a check command after --')
        return cmd_explore(a.log, a.snap, a.after_mark, a.cuts, a.points, a.random,
                           a.seed, a.keep_failed, check)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
