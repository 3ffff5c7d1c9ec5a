#!/usr/bin/env python3
"""The shape of src/: which top-level modules import which, the cycles among them, the largest files.

Issue 22 asks for this before and after the seams step, so reviewers can see the circle shrink
rather than take it on trust. It reads `crate::…` paths (in `use` lines and inline), including
grouped imports (`use crate::{a::X, b}`), and attributes each to the top-level module of the file
it appears in (`src/<module>/…` or `src/<module>.rs`). `lib.rs` and `main.rs` are the roots that
declare every module, so they are left out of the graph.

Usage: scripts/lib/module_shape.py [--check] [SRC_DIR]   (default: src)

With --check it exits 1 when there is a cycle, so the tests keep the layering written down in
src/lib.rs (issue 22 broke the last cycle; a new upward import would quietly start another).
"""

import os
import re
import sys
from collections import defaultdict

ROOTS = {"lib", "main"}


def strip_comments(text):
    # Line comments only: doc comments mention paths (`crate::probe`) that are not imports.
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def group_heads(body):
    """The first path segment of each item of a `{…}` group, at the group's own level."""
    heads, depth, item = [], 0, ""
    for ch in body + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            head = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", item)
            if head:
                heads.append(head.group(1))
            item = ""
        else:
            item += ch
    return heads


def crate_targets(text):
    """(top-level module, line number) of every `crate::` path in the text."""
    out = []
    for m in re.finditer(r"\bcrate::", text):
        line = text.count("\n", 0, m.start()) + 1
        rest = text[m.end():]
        if rest.startswith("{"):
            depth, end = 0, 0
            for i, ch in enumerate(rest):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    end = i
                    break
            out.extend((h, line) for h in group_heads(rest[1:end]))
        else:
            head = re.match(r"([A-Za-z_][A-Za-z0-9_]*)", rest)
            if head:
                out.append((head.group(1), line))
    return out


def top_module(src, path):
    rel = os.path.relpath(path, src)
    first = rel.split(os.sep, 1)[0]
    return first[:-3] if first.endswith(".rs") else first


def tarjan(nodes, edges):
    index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sccs


def main():
    args = sys.argv[1:]
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    src = args[0] if args else "src"
    modules = set()
    files = []
    for dirpath, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                files.append(os.path.join(dirpath, name))
    for path in files:
        modules.add(top_module(src, path))
    modules -= ROOTS

    # (from, to) -> {file: [lines]}
    uses = defaultdict(lambda: defaultdict(list))
    for path in sorted(files):
        frm = top_module(src, path)
        if frm in ROOTS:
            continue
        with open(path, encoding="utf-8") as f:
            text = strip_comments(f.read())
        for to, line in crate_targets(text):
            if to in modules and to != frm:
                uses[(frm, to)][os.path.relpath(path, src)].append(line)

    edges = defaultdict(set)
    for frm, to in uses:
        edges[frm].add(to)
    sccs = [s for s in tarjan(modules, edges) if len(s) > 1]

    print(f"modules: {len(modules)}, module edges: {len(uses)}")
    if not sccs:
        print("cycles: none")
    for n, scc in enumerate(sorted(sccs, key=len, reverse=True), 1):
        members = set(scc)
        inner = sorted((k for k in uses if k[0] in members and k[1] in members),
                       key=lambda k: (sum(len(v) for v in uses[k].values()), k))
        cycle_files = {f for k in inner for f in uses[k]}
        print(f"cycle {n}: {len(scc)} modules, {len(inner)} edges, {len(cycle_files)} files: {' '.join(scc)}")
        print("  edges inside it (fewest uses first: the cheapest to cut):")
        for frm, to in inner:
            where = uses[(frm, to)]
            count = sum(len(v) for v in where.values())
            sites = ", ".join(f"{f}:{','.join(map(str, lines))}" for f, lines in sorted(where.items()))
            print(f"    {frm} -> {to} ({count}): {sites}")

    sizes = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            sizes.append((sum(1 for _ in f), os.path.relpath(path, src)))
    print("largest files (lines):")
    for lines, path in sorted(sizes, reverse=True)[:10]:
        print(f"  {lines:5d} {path}")
    if check and sccs:
        print(f"error: {len(sccs)} import cycle(s) between the top-level modules of {src}: move the "
              "item a lower module imports from a higher one down to the lower one (see the layering "
              "in src/lib.rs)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
