#!/usr/bin/python3
"""make test: the include graph between the modules has no cycle.

A module is a .c file and its .h (shopd/cart.c and shopd/cart.h are the module
shopd/cart); module A depends on module B when A's .c or .h includes B's .h.
A cycle means some module calls back into one that calls it. Prints every cycle
(as a strongly connected component of the graph) and exits 1 when there is one.
"""
import collections
import glob
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FOLDERS = ["shopd", "balancer", "ratelimitd", "shared"]
edges = collections.defaultdict(set)
for folder in FOLDERS:
    for path in glob.glob(folder + "/*.[ch]"):
        module = folder + "/" + os.path.splitext(os.path.basename(path))[0]
        for line in open(path, encoding="utf-8"):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            target = m.group(1) if "/" in m.group(1) else folder + "/" + m.group(1)
            target = os.path.splitext(target)[0]
            if target != module and os.path.exists(target + ".h"):
                edges[module].add(target)

# Tarjan's strongly connected components, iteratively.
index, low, on_stack, stack, cycles = {}, {}, set(), [], []
counter = 0
for root in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
    if root in index:
        continue
    work = [(root, iter(sorted(edges.get(root, ()))))]
    index[root] = low[root] = counter
    counter += 1
    stack.append(root)
    on_stack.add(root)
    while work:
        node, children = work[-1]
        advanced = False
        for child in children:
            if child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
                advanced = True
                break
            if child in on_stack:
                low[node] = min(low[node], index[child])
        if advanced:
            continue
        work.pop()
        if work:
            low[work[-1][0]] = min(low[work[-1][0]], low[node])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

print("== include-cycles (%d modules)" % len(set(edges) | {t for ts in edges.values() for t in ts}))
if cycles:
    for c in cycles:
        print("   cycle: " + " <-> ".join(c))
    print("   FAILED: %d cycles between modules" % len(cycles))
    sys.exit(1)
print("   no cycle")
