#!/usr/bin/env python3
"""The stage rule, checked: inside the library, every `crate::` path names
the module that defines what it imports; no module imports a later stage;
no two files import each other, directly or round a longer circle.

The stages, in the order data flows (src/lib.rs's table). A file may import
from its own stage and from stages above it. `pub use` lines (a module's
public surface) are not imports. Run from the repository root:
    python3 tests/stages.py            # prints the violations, exits 1 on any
    python3 tests/stages.py --graph    # also prints the file-level graph
"""
import os
import re
import sys

STAGES = [
    ["error", "units", "runtime"],
    ["geo"],
    ["fetch"],
    ["cog"],
    ["zarr"],
    ["stac"],
    ["stack"],
    ["dataset"],
    ["shard"],
    ["loader"],
    ["burn"],
    ["plot"],
    ["demo"],
]
RANK = {m: i for i, ms in enumerate(STAGES) for m in ms}
# Stage imports that run against the order on purpose, each with its reason.
ALLOWED = {
    # A dataset whose config names the demo world generates and serves it on
    # loopback (feature `demo`, `[catalog] source = "demo"`), so that a demo
    # config opens like any other.
    ("dataset", "demo"),
}


def files():
    for d, _, fs in os.walk("src"):
        if d.startswith(os.path.join("src", "bin")):
            continue
        for f in fs:
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def module_of(path):
    parts = path[len("src/") : -len(".rs")].split("/")
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def strip(text):
    """Code without comments, strings and `#[cfg(test)]` modules."""
    token = re.compile(
        r'//[^\n]*|/\*.*?\*/|r(#*)".*?"\1|b?"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])\'', re.S
    )
    text = token.sub(lambda m: "" if m.group(0).startswith("/") else '""', text)
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]


def main():
    mods = {module_of(p): p for p in files()}
    bad = []
    edges = {}
    for path in sorted(mods.values()):
        me = module_of(path)
        code = strip(open(path, encoding="utf-8").read())
        # `pub use` re-exports are the module's surface, not its imports.
        code = re.sub(r"pub(\([a-z]+\))?\s+use\s+[^;]*;", "", code)
        targets = set()
        for m in re.finditer(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{)?", code):
            segs = [s for s in m.group(2).split("::") if s]
            if m.group(1) != "crate":
                # relative paths: the module itself (`self`) or its parent
                # (`super`; a file's parent, or a `mod.rs` folder's parent)
                base = list(me) if m.group(1) == "self" else list(me[:-1])
                while segs and segs[0] == "super":
                    base, segs = base[:-1], segs[1:]
                segs = base + segs
            if m.group(3):
                segs = segs + ["{"]  # a group of items of that module
            if not segs:
                continue
            k = max((i for i in range(1, len(segs) + 1) if tuple(segs[:i]) in mods), default=0)
            if k == 0:
                bad.append(f"{path}: crate::{'::'.join(segs)} names no module (import from the defining module)")
                continue
            target = tuple(segs[:k])
            if k == len(segs):
                continue  # a module itself (`use crate::fetch;`)
            if target != me:
                targets.add(target)
            if me and target and me[0] in RANK and target[0] in RANK:
                a, b = RANK[me[0]], RANK[target[0]]
                if b > a and (me[0], target[0]) not in ALLOWED:
                    bad.append(f"{path}: imports the later stage {'::'.join(target)}")
        edges[me] = targets
    # Circles: Tarjan's strongly connected components over files.
    index, low, on, stack, comps = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    for comp in comps:
        bad.append("import circle: " + " <-> ".join(sorted("::".join(c) or "crate" for c in comp)))
    if "--graph" in sys.argv:
        for v, ts in sorted(edges.items()):
            print("::".join(v) or "crate", "->", ", ".join(sorted("::".join(t) for t in ts)))
    for b in bad:
        print(b)
    print(f"{len(mods)} modules, {sum(len(t) for t in edges.values())} imports, {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
