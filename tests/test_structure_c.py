"""The C data plane's structure, read from csrc/ (no daemon, no build).

- The include graph of csrc/ has one cycle, the receive path: a frame goes
  up (eth.c -> ip4.c -> tcp.c...) while everything else points down (tcp.c ->
  ip.c -> eth.c -> tap.c).  The test names the receive edges by rule and
  asserts the rest of the graph is acyclic.
- Every ALL_CAPS constant a theory comment (the comment opening a file) names
  exists in csrc/, defined exactly once.

Run as a script (python tests/test_structure_c.py) to print the graph.
"""

import os
import re
import sys

CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "csrc")

# A receive entry point: a packet, connection or datagram handed up a layer
# (eth_input, ip4_l4_input, tcp_conn_from_host, splice_accept...)
RECEIVE_ENTRY = re.compile(r"(_input|_accept|_from_host)$")


def _read(name):
    with open(os.path.join(CSRC, name), encoding="utf-8") as f:
        return f.read()


def _code(text):
    """Return text without comments and string literals."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


def _files(ext):
    return sorted(n for n in os.listdir(CSRC) if n.endswith(ext))


def _includes(name):
    """Local headers a file includes, in order."""
    return re.findall(r'^#include "([^"]+)"', _read(name), re.M)


def _prototypes(header):
    """Functions a header declares (not static inline ones)."""
    code = _code(_read(header))
    code = re.sub(r"static inline[^{]*\{.*?\n\}", " ", code, flags=re.S)
    return set(re.findall(r"\b(\w+)\s*\([^;{)]*(?:\([^)]*\)[^;{)]*)*\)\s*;", code))


def module_graph():
    """Module dependency graph: {module: {module: set of functions used}}.

    A module is a .c file; module A depends on module B when A.c includes B.h
    and B.h declares functions (B.c implements them).  Headers of types and
    inline helpers only (dp.h, the ground; util.h, inany.h, dp_limits.h...)
    are no modules' interfaces and make no edges.
    """
    modules = {n[:-2] for n in _files(".c")}
    graph = {}
    for m in sorted(modules):
        code = _code(_read(m + ".c"))
        used = set(re.findall(r"\b(\w+)\s*\(", code))
        graph[m] = {}
        for h in _includes(m + ".c"):
            dep = h[:-2]
            if dep == m or dep not in modules:
                continue
            protos = _prototypes(h)
            if protos:
                graph[m][dep] = protos & used
    return graph


def is_receive_edge(funcs):
    """Tell whether an edge only hands packets up: every function it uses is
    a receive entry point (and it uses at least one)."""
    return bool(funcs) and all(RECEIVE_ENTRY.search(f) for f in funcs)


def find_cycle(graph):
    """Return one cycle of graph ({node: iterable of nodes}) as a list, or
    None if it is acyclic."""
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_include_graph_acyclic_outside_receive_path():
    graph = module_graph()
    down = {m: {d for d, f in deps.items() if not is_receive_edge(f)}
            for m, deps in graph.items()}
    assert find_cycle(down) is None, "cycle outside the receive path: %s" % (
        " -> ".join(find_cycle(down)))


def test_receive_path_is_the_only_cycle():
    """The rule above must not be vacuous: the receive edges exist, and with
    them the graph does have its one natural cycle."""
    graph = module_graph()
    receive = sorted((m, d) for m, deps in graph.items()
                     for d, f in deps.items() if is_receive_edge(f))
    for edge in [("eth", "ip4"), ("eth", "ip6"), ("ip4", "tcp"), ("ip6", "udp")]:
        assert edge in receive
    full = {m: set(deps) for m, deps in graph.items()}
    assert find_cycle(full) is not None


def test_headers_acyclic():
    graph = {h: {i for i in _includes(h)} for h in _files(".h")}
    assert find_cycle(graph) is None


def test_flow_calls_no_protocol():
    """flow.c owns the life cycle and calls no protocol file: dp.c
    dispatches events and timers."""
    graph = module_graph()
    assert not set(graph["flow"]) & {"tcp", "udp", "icmp", "splice"}


def flow_common_fields():
    """Fields of struct flow outside its protocol union: flow.c's to write."""
    code = _code(_read("flow.h"))
    body = re.search(r"struct flow \{(.*?)\n\tunion \{", code, re.S).group(1)
    return set(re.findall(r"(\w+)(?:\[[^]]*\])?;", body))


def common_field_writes(name, fields):
    """Writes a file makes to fields of a struct flow it points to, as
    "var->field" strings (variables declared struct flow *)."""
    code = _code(_read(name))
    flows = set(re.findall(r"struct flow \*\s*(\w+)", code))
    found = []
    for var, field in re.findall(
            r"\b(\w+)->(\w+)\s*(?:[-+|&^]?=(?!=)|\+\+|--)", code):
        if var in flows and field in fields:
            found.append("%s->%s" % (var, field))
    return found


def test_only_flow_c_writes_common_fields():
    """A flow's common fields (type, state, socket, generation, hash and LRU
    links, timer, key) are written in flow.c only: every other file opens,
    watches, times, moves and closes flows through flow.c's functions."""
    fields = flow_common_fields()
    assert {"type", "state", "sock", "gen", "hash_next", "key"} <= fields, fields
    writes = {n: common_field_writes(n, fields) for n in _files(".c") if n != "flow.c"}
    assert not {n: w for n, w in writes.items() if w}
    assert common_field_writes("flow.c", fields), "the check found no write at all"


# What only flow.c may touch of struct flow_ctx: the table, its lists, counts
FLOW_TABLE_FIELDS = re.compile(
    r"->flow\.(table|buckets|free_head|closed_head|high_water|count|closed|socks)\b")


def test_only_flow_c_frees_flows():
    """Flows are freed in flow.c only (flow_close() marks, flow_defer_sweep()
    frees): no other file touches the table, its free and closed lists or
    its counts, or names the states of a free or closed slot except to ask
    flow_closed()."""
    for n in _files(".c"):
        code = _code(_read(n))
        used = FLOW_TABLE_FIELDS.findall(code)
        named = re.findall(r"\b(FLOW_FREE|FLOW_ST_FREE|FLOW_ST_CLOSED)\b", code)
        if n == "flow.c":
            assert used and named, "the check found nothing in flow.c itself"
        else:
            assert not used and not named, (n, used, named)


def test_no_internal_call_to_public_api():
    """dp_api.h is Python's door: no csrc file calls a dp_*() function
    another file defines (they would bypass the module headers)."""
    api = _prototypes("dp_api.h")
    defined = {}
    for c in _files(".c"):
        for name in api:
            if re.search(r"^\w[\w \*]*\b%s\(" % name, _read(c), re.M):
                defined[name] = c
    for c in _files(".c"):
        used = set(re.findall(r"\b(dp_\w+)\s*\(", _code(_read(c))))
        for name in used & api:
            assert defined.get(name) == c, "%s calls %s" % (c, name)


def _theory_comment(text):
    m = re.match(r"\s*/\*(.*?)\*/", text, re.S)
    return m.group(1) if m else ""


def _definitions():
    """{name: [file, ...]} of #define and enum constants across csrc/."""
    defs = {}
    for n in _files(".c") + _files(".h"):
        code = _code(_read(n))
        names = re.findall(r"^#define\s+(\w+)", code, re.M)
        for body in re.findall(r"enum\s+\w*\s*\{(.*?)\}", code, re.S):
            names += re.findall(r"^\s*([A-Z][A-Z0-9_]+)\s*[,=]", body, re.M)
        for xm in re.finditer(r"#define\s+\w+\(X\)(.*?)(?<!\\)\n", code, re.S):
            names += re.findall(r"X\(([A-Z][A-Z0-9_]+)", xm.group(1))
        for name in names:
            defs.setdefault(name, []).append(n)
    return defs


def theory_constants():
    """{name: [file, ...]}: ALL_CAPS identifiers each theory comment names."""
    named = {}
    for n in _files(".c") + _files(".h"):
        for name in re.findall(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b",
                               _theory_comment(_read(n))):
            named.setdefault(name, []).append(n)
    return named


# Names theory comments use that are not ours to define: the kernel's, libc's
# and the virtio specification's (GSO_UDP_L4, UDP_L4, NEEDS_CSUM: its names without
# their VIRTIO_NET_HDR_ prefix)
SYSTEM_NAMES = re.compile(
    r"^(IFF_|TUN_F_|TUNSET|VIRTIO_NET_|GSO_|UDP_L4$|NEEDS_CSUM$|SO_|SOL_|SCM_|SHUT_"
    r"|IP_|IPV6_|IPPROTO_|UDP_(SEGMENT|GRO)$|TCP_(NODELAY|CORK|INFO|QUICKACK)$"
    r"|MSG_|EPOLL|SOCK_|AF_|E[A-Z]+$|RLIMIT_|SPLICE_F_|F_SETPIPE_SZ$|CLOCK_)")


def test_theory_constants_exist_once():
    defs = _definitions()
    named = theory_constants()
    assert named, "no theory comment names a constant: the check is vacuous"
    missing = {}
    for name, where in sorted(named.items()):
        if name.endswith("_"):		# a family: DP_NOTICE_*
            assert any(d.startswith(name) for d in defs), name
        elif name in defs:
            assert len(defs[name]) == 1, "%s defined in %s" % (name, defs[name])
        elif not SYSTEM_NAMES.match(name):
            missing[name] = where
    assert not missing, "theory comments name constants csrc/ lacks: %s" % missing


if __name__ == "__main__":
    for mod, deps in module_graph().items():
        marks = ["%s%s" % (d, "(rx)" if is_receive_edge(f) else "")
                 for d, f in sorted(deps.items())]
        print("%s -> %s" % (mod, " ".join(marks)))
    sys.exit(0)
