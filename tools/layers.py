#!/usr/bin/env python3
"""layers.py [LIBDIR] - check lib/'s includes against its layers.

A module is a .c/.h pair in a layer folder (lib/LAYER/NAME.[ch]). It may
include headers of its own layer and of the layers listed before its own
in LIBDIR/LAYERS; an include of a higher layer is an error, and so is a
cycle of includes between modules (a.c includes b.h, b.c includes a.h,
through any number of steps). Each error names the files. Exit 0: clean;
1: errors, one per line on stderr; 2: cannot read the tree."""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main():
    lib = sys.argv[1] if len(sys.argv) > 1 else 'lib'
    try:
        with open(os.path.join(lib, 'LAYERS')) as f:
            layers = [l.strip() for l in f if l.strip() and not l.startswith('#')]
    except OSError as e:
        print('layers: cannot read the layer list: %s' % e, file=sys.stderr)
        return 2
    rank = {name: i for i, name in enumerate(layers)}
    errors = []
    edges = {}      # module -> {module: the file whose include made the edge}
    for layer in sorted(os.listdir(lib)):
        d = os.path.join(lib, layer)
        if not os.path.isdir(d):
            continue
        if layer not in rank:
            errors.append('%s: a folder that lib/LAYERS does not list' % d)
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith(('.c', '.h')):
                continue
            path = os.path.join(d, name)
            mod = '%s/%s' % (layer, name[:-2])
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    if '/' not in inc:
                        if not os.path.exists(os.path.join(d, inc)):
                            errors.append('%s:%d: includes "%s" without its '
                                          'layer' % (path, n, inc))
                        continue
                    to_layer = inc.split('/')[0]
                    if to_layer not in rank:
                        continue        # ctxvault/cvclient.h, the public header
                    if rank[to_layer] > rank[layer]:
                        errors.append('%s:%d: includes %s, of a higher layer '
                                      '(%s is below %s)' % (path, n, inc, layer,
                                                            to_layer))
                    target = inc[:-2]
                    if target != mod:
                        edges.setdefault(mod, {}).setdefault(target, '%s:%d' % (path, n))
    for cycle in cycles(edges):
        steps = ['%s (%s)' % (b, edges[a][b]) for a, b in zip(cycle, cycle[1:] + cycle[:1])]
        errors.append('include cycle: %s -> %s' % (cycle[0], ' -> '.join(steps)))
    for e in errors:
        print('layers: %s' % e, file=sys.stderr)
    return 1 if errors else 0


def cycles(edges):
    """One cycle through each strongly connected group of modules."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(path_in(sorted(group), edges))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def path_in(group, edges):
    """A cycle from group[0] back to itself, inside the group."""
    members, start = set(group), group[0]
    prev, todo = {start: None}, [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(edges.get(v, {})):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return path[::-1]
            if w in members and w not in prev:
                prev[w] = v
                todo.append(w)
    return group


if __name__ == '__main__':
    sys.exit(main())
