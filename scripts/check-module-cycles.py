#!/usr/bin/env python3
"""Module-cycle check for the crate under src/: no module imports a module that imports it back.

At each level of the module tree the sibling modules are the nodes (a file `a.rs`, or a folder
module `a/` with everything below it), and A -> B when any file inside A refers to anything
inside B. Each strongly connected component of more than one sibling is reported as a cycle,
with file:line evidence for each edge. A reference between a module and its own ancestor (a
child's `super::X`, a parent using its child) is containment and is not counted.

How (source text only, no build): files are tokenized without comments, string/char literals
and `#[cfg(test)]` items (`mod tests { .. }`); the module tree is followed from lib.rs (else
main.rs) through `mod name;`. Every leaf of every `use` tree (`use crate::{a::X, b::{Y, Z}}`,
`self`, `super::`, child names, `as`, globs) and every path of 2+ segments in code
(`crate::b::f()`, `Arc<super::b::T>`, `child::f`, `Bound::Variant`) is resolved to the module
that defines the item, following `use` bindings: `crate::kafka::Delivered` with kafka/mod.rs
saying `pub use producer::Delivered` lands on kafka/producer.rs (also via `pub use x::*`).
A `pub use` / `pub(..) use` in a file that has child modules (lib.rs, mod.rs, a.rs beside a/)
is a facade: followed when resolving, never a reference of that file itself (but a bare name
it re-exports, used in its own code, is; so is a bare name brought in by a non-test glob).
Limits: a non-test inline `mod x { .. }` counts as part of its file; `#[path]` and paths made
by macros are not seen.

Usage: scripts/check-module-cycles.py [SRC_DIR]   (default: src/ beside scripts/)
       scripts/check-module-cycles.py --self-test [KEEP_DIR]   (fixtures in a temp dir)
Exit status: 0 no cycle, 1 cycle(s) found (or a self-test failure), 2 usage error.
"""
import os
import re
import sys
import tempfile

LEX = re.compile(r"""(?P<sp>\s+)|(?P<lc>//[^\n]*)|(?P<bc>/\*)
  |(?P<raw>[bc]?r(?P<hs>\#*)")|(?P<str>[bc]?"(?:\\.|[^"\\])*")
  |(?P<chr>b?'(?:\\(?:u\{\w*\}|x\w\w|.)|[^\\'\n])')|(?P<life>'\w+)
  |(?P<id>\$crate\b|(?:r\#)?[A-Za-z_]\w*|\d\w*)|(?P<pp>::)|(?P<p>.)""", re.X | re.S)
ITEM_KW = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}

def is_ident(t):
    return t[:1].isalpha() or t[:1] == "_" or t == "$crate"

def tx(toks, k):
    return toks[k][0] if 0 <= k < len(toks) else ""

def lex(src):
    """Tokens (text, line) of Rust source, without comments and literals."""
    toks, i, line = [], 0, 1
    while i < len(src):
        m = LEX.match(src, i)
        kind, j = m.lastgroup, m.end()
        if kind == "bc":  # block comments nest
            depth = 1
            while depth and j < len(src):
                step = src[j:j + 2]
                depth += (step == "/*") - (step == "*/")
                j += 2 if step in ("/*", "*/") else 1
        elif kind == "raw":
            k = src.find('"' + m.group("hs"), j)
            j = len(src) if k < 0 else k + 1 + len(m.group("hs"))
        elif kind in ("id", "pp", "p"):
            toks.append((m.group().removeprefix("r#"), line))
        line += src.count("\n", i, j)
        i = j
    return toks

def close(toks, i):
    """Index just after the bracket group that opens at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        depth += (toks[j][0] in "([{") - (toks[j][0] in ")]}")
        if depth == 0:
            return j + 1
    return len(toks)

def drop_tests(toks):
    """Remove items under #[cfg(test)] (or cfg(all(test, ..))); #![cfg(test)] drops the file."""
    out, i = [], 0
    while i < len(toks):
        b = i + 1 + (tx(toks, i + 1) == "!")
        if toks[i][0] == "#" and tx(toks, b) == "[":
            end = close(toks, b)
            words = [t for t, _ in toks[b + 1:end - 1]]
            if words[:1] == ["cfg"] and "test" in words and "not" not in words:
                if b == i + 2:
                    return []
                k = end  # skip further attributes, then the item up to `;` or its `{ .. }`
                while k < len(toks) and toks[k][0] not in (";", "{"):
                    k = close(toks, k) if toks[k][0] in ("(", "[") else k + 1
                i = close(toks, k) if tx(toks, k) == "{" else k + 1
                continue
        out.append(toks[i])
        i += 1
    return out

def use_tree(toks, i, prefix, leaves):
    """Parse the use tree at toks[i] into leaves (segments, binding, line, glob); next index."""
    segs = list(prefix)
    i += toks[i][0] == "::"
    while i < len(toks):
        t, line = toks[i]
        if t == "{":
            i += 1
            while i < len(toks) and toks[i][0] != "}":
                i = use_tree(toks, i, segs, leaves)
                i += tx(toks, i) == ","
            return i + 1
        if t == "*":
            leaves.append((segs, None, segs[-1][1] if segs else line, True))
            return i + 1
        segs.append((t, line))
        if tx(toks, i + 1) == "::":
            i += 2
            continue
        if t == "self" and len(segs) > 1:
            segs.pop()
        alias = tx(toks, i + 2) if tx(toks, i + 1) == "as" else None
        leaves.append((segs, alias or segs[-1][0], segs[-1][1], False))
        return i + (3 if alias else 1)
    return i

class Mod:
    def __init__(self, path, file, parent):
        self.path, self.file, self.parent = path, file, parent
        self.children, self.binds, self.globs, self.items = {}, {}, [], set()
        self.uses, self.use_spans, self.decls = [], [], []

    def label(self):  # a folder module (mod.rs, or a.rs beside a/) is shown as "a/"
        return self.file[:-6] if self.file.endswith("mod.rs") else self.file[:-3] + "/" if self.children else self.file

def parse(m):
    """Collect m's top-level items, `mod x;` declarations, `use` leaves and bindings."""
    toks, depth = m.toks, 0
    for i, (t, _) in enumerate(toks):
        nxt = tx(toks, i + 1)
        depth += (t == "{") - (t == "}")
        if depth == 0 and t in ITEM_KW and is_ident(nxt):
            m.items.add(nxt)
        elif depth == 0 and t == "mod" and is_ident(nxt) and tx(toks, i + 2) == ";":
            m.decls.append(nxt)
        elif t == "use" and nxt:
            vis = [x for x, _ in toks[max(i - 7, 0):i]]  # `pub use`, `pub(crate) use`, `pub(in p) use`
            public, leaves = vis[-1:] == ["pub"] or vis[-1:] == [")"] and "pub" in vis, []
            m.use_spans.append(range(i, use_tree(toks, i + 1, [], leaves)))
            for segs, name, line, glob in leaves:
                names = [s for s, _ in segs]
                if names:
                    m.uses.append((names, line, public, glob))
                    if glob:
                        m.globs.append(names)
                    elif name != "_":
                        m.binds.setdefault(name, []).append((names, public))

def load(src):
    """All modules of the crate rooted at src/lib.rs (else src/main.rs), or None."""
    root = next((Mod((), f, None) for f in ("lib.rs", "main.rs") if os.path.isfile(os.path.join(src, f))), None)
    todo, mods = [root] if root else [], []
    while todo:
        m = todo.pop()
        mods.append(m)
        with open(os.path.join(src, m.file), encoding="utf-8") as fh:
            m.toks = drop_tests(lex(fh.read()))
        parse(m)
        base = os.path.dirname(m.file) if os.path.basename(m.file) in ("lib.rs", "main.rs", "mod.rs") else m.file[:-3]
        for name in m.decls:
            for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.isfile(os.path.join(src, cand)):
                    m.children[name] = Mod(m.path + (name,), cand, m)
                    todo.append(m.children[name])
                    break
    return mods or None

def lookup(m, name, seen):
    """What `name` means in module m: (defining module, is a module?), or None if unknown."""
    if name in m.children:
        return m.children[name], True
    for segs, _ in m.binds.get(name, ()):
        r = resolve(m, segs, seen | {(id(m), name)}) if (id(m), name) not in seen else None
        if r:
            return r
    if name in m.items:
        return m, False
    for g in m.globs:  # `use path::*`: every name of that module
        key = (id(m), "*", tuple(g))
        src = resolve(m, g, seen | {key}) if key not in seen else None
        r = lookup(src[0], name, seen | {key}) if src and src[1] and src[0] is not m else None
        if r:
            return r
    return None

def resolve(m, segs, seen=frozenset()):
    """Where path `segs`, written in module m, leads: (module, is a module?), or None (extern)."""
    first, rest, cur = segs[0], segs[1:], m
    if first in ("crate", "$crate"):
        while cur.parent:
            cur = cur.parent
    elif first in ("self", "super"):
        cur = m.parent if first == "super" else m
        while cur and rest and rest[0] == "super":
            cur, rest = cur.parent, rest[1:]
        if cur is None:
            return None
    else:  # a child module, a `use` binding or an item of m; else std or a dependency
        r = lookup(m, first, seen)
        if r is None or not r[1]:
            return r
        cur = r[0]
    for s in rest:
        r = lookup(cur, s, seen)
        if r is None or not r[1]:  # an item: where it was found, else assumed defined in cur
            return (r or (cur, False))[0], False
        cur = r[0]
    return cur, True

def canon(m, segs):
    """A `use` path spelled from the crate root, for the evidence lines."""
    if segs[0] in ("self", "super") or segs[0] in m.children:
        base, rest = (m.parent if segs[0] == "super" else m), segs[segs[0] in ("self", "super"):]
        while rest and rest[0] == "super":
            base, rest = base.parent, rest[1:]
        segs = ["crate", *base.path, *rest]
    return "::".join(["crate"] + segs[1:] if segs[0] == "$crate" else segs)

def references(m):
    """(target module, line, text) of every reference written in module m's file."""
    for names, line, public, glob in m.uses:
        r = None if public and m.children else resolve(m, names)  # facade re-export: not counted
        if r:
            yield r[0], line, "use " + canon(m, names) + ("::*" if glob else "")
    skip = {k for span in m.use_spans for k in span}
    toks, i = m.toks, 0
    while i < len(toks):
        t, line = toks[i]
        if i in skip or not is_ident(t) or tx(toks, i - 1) in (".", "::"):
            i += 1
            continue
        segs, j, r = [t], i + 1, None
        while tx(toks, j) == "::" and is_ident(tx(toks, j + 1)):
            segs.append(toks[j + 1][0])
            j += 2
        if len(segs) > 1 and [x for x, _ in toks[max(i - 3, 0):i]] != ["pub", "(", "in"]:
            r = resolve(m, segs)
        elif len(segs) == 1 and (m.children and any(p for _, p in m.binds.get(t, ())) or
                                 m.globs and t not in m.binds and t not in m.items):
            r = lookup(m, t, frozenset())  # a name the facade re-exported, or one from a glob
            r = None if r and r[1] else r  # a lone name is never a module reference
        if r:
            yield r[0], line, "::".join(segs)
        i = j

def sccs(adj):
    """Strongly connected components of more than one node (a level has a few dozen nodes)."""
    reach = {}
    for v in adj:
        seen, todo = set(), list(adj[v])
        while todo:
            w = todo.pop()
            if w not in seen:
                seen.add(w)
                todo.extend(adj.get(w, ()))
        reach[v] = seen
    return {c for v in adj if len(c := frozenset({v} | {w for w in reach[v] if v in reach.get(w, ())})) > 1}

def analyse(src):
    """-> (files checked, [(parent path, [node labels], [evidence lines])]) or None."""
    mods = load(src)
    if mods is None:
        return None
    by_path, edges = {m.path: m for m in mods}, {}  # parent -> {(a, b): {(file, file): (line, text)}}
    for m in mods:
        for t, line, text in references(m):
            k = next((k for k, (x, y) in enumerate(zip(m.path, t.path)) if x != y), min(len(m.path), len(t.path)))
            if k == len(m.path) or k == len(t.path):
                continue  # same module, or ancestor/descendant: containment
            ev = edges.setdefault(m.path[:k], {}).setdefault((m.path[:k + 1], t.path[:k + 1]), {})
            if (m.file, t.file) not in ev or line < ev[m.file, t.file][0]:
                ev[m.file, t.file] = (line, text)
    cycles = []
    for parent in sorted(edges):
        adj = {}
        for a, b in edges[parent]:
            adj.setdefault(a, []).append(b)
        for comp in sorted(sccs(adj), key=sorted):
            lines = [f"{f}:{line} -> {g} ({text})"
                     for (a, b), ev in sorted(edges[parent].items()) if a in comp and b in comp
                     for (f, g), (line, text) in sorted(ev.items())]
            cycles.append((parent, sorted(by_path[p].label() for p in comp), lines))
    return len(mods), cycles

LIB, K = "pub mod a;\npub mod b;\npub mod c;\n", {"lib.rs": "pub mod k;\n"}
FIXTURES = {  # name: (files, expected cycles as sets of node labels)
    "facade": ({**K, "k/mod.rs": "mod x;\nmod y;\npub use y::{Delivered, Other};\n",
                "k/x.rs": "use crate::k::Delivered;\npub struct Opaque;\n",
                "k/y.rs": "pub struct Delivered(super::x::Opaque);\npub struct Other;\n"}, [{"k/x.rs", "k/y.rs"}]),
    "glob-facade": ({**K, "k/mod.rs": "mod x;\nmod y;\npub use y::*;\n",
                     "k/x.rs": "pub struct Opaque;\npub fn f(_: crate::k::Delivered) {}\n",
                     "k/y.rs": "use super::x::Opaque;\npub struct Delivered;\n"}, [{"k/x.rs", "k/y.rs"}]),
    "self-facade": ({"lib.rs": "pub mod a;\npub mod b;\npub use self::a::A;\n", "a.rs": "pub mod t;\npub struct A;\n",
                     "b.rs": "pub struct B(crate::A);\n", "a/t.rs": "fn f(_: crate::b::B) {}\n"}, [{"a/", "b.rs"}]),
    "facade-line": ({"lib.rs": LIB, "a/mod.rs": "mod i;\npub use crate::b::B;\n", "a/i.rs": "pub struct A;\n",
                     "b.rs": "use crate::a::i::A;\npub struct B;\n", "c.rs": ""}, []),
    "code-path": ({"lib.rs": LIB, "a.rs": "pub fn f() { crate::b::g() }\n",
                   "b.rs": "pub fn g() {\n    if false {\n        crate::a::f();\n    }\n}\n",
                   "c.rs": "fn h() -> Vec<Box<crate::a::T>> { todo!() }\n"}, [{"a.rs", "b.rs"}]),
    "super": ({"lib.rs": "pub mod p;\n", "p/mod.rs": "mod c;\npub struct S;\npub fn u() { c::f() }\n",
               "p/c.rs": "use super::S;\npub fn f() { let _ = super::u; }\n"}, []),
    "grouped": ({"lib.rs": LIB, "a.rs": "use crate::{b::X, c::{self, Y as Z}};\npub struct W;\n",
                 "b.rs": "pub struct X;\n", "c.rs": "use crate::a::W;\npub struct Y;\n"}, [{"a.rs", "c.rs"}]),
    "test-only": ({"lib.rs": LIB, "a.rs": "use crate::b::X;\npub struct W;\n", "c.rs": "",
                   "b.rs": "pub struct X;\n#[cfg(test)]\nmod tests {\n    use crate::a::W;\n}\n"}, []),
    "literals": ({"lib.rs": LIB, "a.rs": "use crate::b::X;\npub struct W;\n", "c.rs": "", "b.rs": "pub struct X;\n"
                  "// crate::a::W\n/* /* */ use crate::a::W; */\nconst C: char = '\"';\nconst S: &str = \"crate::a::W\";\n"
                  "const R: &str = r#\"\"crate::a::W\"#;\nfn f<'a>(_: &'a str) -> &'a [u8] { b\"crate::a::W\" }\n"}, []),
}

def self_test(keep=None):
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (files, expected) in FIXTURES.items():
            src = os.path.join(keep or tmp, name, "src")
            for rel, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
                with open(os.path.join(src, rel), "w", encoding="utf-8") as fh:
                    fh.write(text)
            got = sorted(sorted(labels) for _, labels, _ in analyse(src)[1])
            ok = got == sorted(map(sorted, expected))
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: expected {sorted(map(sorted, expected))}, got {got}")
    print(f"self-test: {len(FIXTURES) - failures}/{len(FIXTURES)} fixtures as expected")
    return 1 if failures else 0

def main(argv):
    if argv[:1] == ["--self-test"] and len(argv) <= 2:
        return self_test(argv[1] if len(argv) > 1 else None)
    if len(argv) > 1 or argv[:1] and argv[0].startswith("-"):
        print(__doc__[__doc__.index("Usage:"):], file=sys.stderr, end="")
        return 2
    src = argv[0] if argv else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    result = analyse(src)
    if result is None:
        print(f"{src}: no lib.rs or main.rs", file=sys.stderr)
        return 2
    for parent, labels, lines in result[1]:
        print(f"cycle in {'::'.join(('crate',) + parent)}: {' <-> '.join(labels)}")
        print("".join(f"    {line}\n" for line in lines), end="")
    print(f"module cycles: {len(result[1])} ({result[0]} files checked in {src})")
    return 1 if result[1] else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
