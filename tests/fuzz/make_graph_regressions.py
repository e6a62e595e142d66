#!/usr/bin/env python3
"""Writes the crafted graph files of issue 26 under tests/fuzz/regressions/graph/ (standard
library only, deterministic). Each starts from a checked-in seed under corpus/graph (a traced
f32 CNN, or the int8 CNN seed) and changes one thing, with the CRC recomputed so that the
change reaches the checks past the parser. graph_fuzz_test replays every file: each must be
rejected at load, or rejected by both Graph::run and InferenceModel (never a crash, never
output from one path only). The format is graph/graph_io.h's.
Run from anywhere: python3 tests/fuzz/make_graph_regressions.py
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus", "graph")
OUT = os.path.join(HERE, "regressions", "graph")
INT, FLOAT, STRING, INTS, FLOATS = range(5)


class Reader:
    def __init__(self, b):
        self.b, self.pos = b, 0

    def get(self, fmt):
        (v,) = struct.unpack_from("<" + fmt, self.b, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def str(self):
        n = self.get("I")
        s = self.b[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def indices(self):
        return [self.get("I") for _ in range(self.get("I"))]


def parse(b):
    assert b[:8] == b"KILNGRPH"
    r = Reader(b[:-4])
    r.pos = 8
    g = {"version": r.get("I"), "values": [], "constants": [], "nodes": []}
    for _ in range(r.get("I")):
        name, dtype, rank = r.str(), r.get("B"), r.get("B")
        g["values"].append([name, dtype, [r.get("q") for _ in range(rank)]])
    g["inputs"], g["outputs"] = r.indices(), r.indices()
    for _ in range(r.get("I")):
        value, is_var, n = r.get("I"), r.get("B"), r.get("Q")
        g["constants"].append([value, is_var, r.b[r.pos:r.pos + n]])
        r.pos += n
    for _ in range(r.get("I")):
        op, attrs = r.str(), []
        for _ in range(r.get("I")):
            name, tag = r.str(), r.get("B")
            if tag == INT:
                v = r.get("q")
            elif tag == FLOAT:
                v = r.get("d")
            elif tag == STRING:
                v = r.str()
            elif tag == INTS:
                v = [r.get("q") for _ in range(r.get("I"))]
            else:
                v = [r.get("d") for _ in range(r.get("I"))]
            attrs.append([name, tag, v])
        g["nodes"].append({"op": op, "attrs": attrs, "inputs": r.indices(), "outputs": r.indices()})
    assert r.pos == len(r.b), "trailing bytes"
    return g


def serialize(g):
    def s(x):
        x = x.encode()
        return struct.pack("<I", len(x)) + x

    def idx(ids):
        return struct.pack("<I", len(ids)) + b"".join(struct.pack("<I", i) for i in ids)

    out = b"KILNGRPH" + struct.pack("<II", g["version"], len(g["values"]))
    for name, dtype, dims in g["values"]:
        out += s(name) + struct.pack("<BB", dtype, len(dims)) + b"".join(struct.pack("<q", d) for d in dims)
    out += idx(g["inputs"]) + idx(g["outputs"]) + struct.pack("<I", len(g["constants"]))
    for value, is_var, data in g["constants"]:
        out += struct.pack("<IBQ", value, is_var, len(data)) + data
    out += struct.pack("<I", len(g["nodes"]))
    for n in g["nodes"]:
        out += s(n["op"]) + struct.pack("<I", len(n["attrs"]))
        for name, tag, v in n["attrs"]:
            out += s(name) + struct.pack("<B", tag)
            if tag == INT:
                out += struct.pack("<q", v)
            elif tag == FLOAT:
                out += struct.pack("<d", v)
            elif tag == STRING:
                out += s(v)
            elif tag == INTS:
                out += struct.pack("<I", len(v)) + b"".join(struct.pack("<q", x) for x in v)
            else:
                out += struct.pack("<I", len(v)) + b"".join(struct.pack("<d", x) for x in v)
        out += idx(n["inputs"]) + idx(n["outputs"])
    return out + struct.pack("<I", zlib.crc32(out))


def seed(name):
    with open(os.path.join(CORPUS, name), "rb") as f:
        b = f.read()
    g = parse(b)
    assert serialize(g) == b, name + " does not round-trip"
    return g


def node(g, op):
    return next(n for n in g["nodes"] if n["op"] == op)


def set_attr(n, name, tag, v):
    for a in n["attrs"]:
        if a[0] == name:
            a[1], a[2] = tag, v
            return
    raise KeyError(name)


def write(name, g):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(serialize(g))


I64_MAX = (1 << 63) - 1
CNN, INT8 = "valid-traced-1.kgraph", "valid-traced-3.kgraph"

# --- Crashes: signed overflow in the spatial and shape arithmetic ---
for k, strides in enumerate([[I64_MAX, 1], [1, I64_MAX], [I64_MAX, I64_MAX], [1 << 62, 3]]):
    g = seed(CNN)
    set_attr(node(g, "conv2d"), "strides", INTS, strides)
    write("invalid-conv-huge-stride-%d.kgraph" % k, g)
g = seed(CNN)
set_attr(node(g, "conv2d"), "dilation", INTS, [1 << 62, 1])
write("invalid-conv-huge-dilation.kgraph", g)
g = seed(CNN)
set_attr(node(g, "conv2d"), "groups", INT, 1 << 62)
write("invalid-conv-groups-2-62.kgraph", g)
g = seed(CNN)
set_attr(node(g, "max_pool2d"), "pool_size", INTS, [I64_MAX, 2])
write("invalid-pool-huge-window.kgraph", g)
g = seed(CNN)
set_attr(node(g, "max_pool2d"), "strides", INTS, [-1, 2])
write("invalid-pool-negative-stride.kgraph", g)
for k, shape in enumerate([[0, 1 << 62, 1 << 62], [0, I64_MAX, 2], [1 << 40, 1 << 40, 0]]):
    g = seed(CNN)
    set_attr(node(g, "reshape"), "shape", INTS, shape)
    write("invalid-reshape-huge-dims-%d.kgraph" % k, g)

# --- A fixed batch dimension of 0 on an input ---
g = seed(CNN)
g["values"][g["inputs"][0]][2][0] = 0
write("invalid-input-batch-0.kgraph", g)

# --- Quantization parameters: non-finite, negative, zero points outside the dtype ---
for name, attr, v in [("x-scale-inf", "x_scale", float("inf")), ("x-scale-negative", "x_scale", -1.0),
                      ("x-scale-nan", "x_scale", float("nan")), ("out-scale-zero", "out_scale", 0.0),
                      ("x-scale-1e300", "x_scale", 1e300)]:
    g = seed(INT8)
    set_attr(node(g, "qconv2d"), attr, FLOAT, v)
    write("invalid-qconv2d-%s.kgraph" % name, g)
g = seed(INT8)
q = node(g, "qlinear")
set_attr(q, "w_scales", FLOATS, [float("inf")] + [a for a in q["attrs"] if a[0] == "w_scales"][0][2][1:])
write("invalid-qlinear-w-scale-inf.kgraph", g)
g = seed(INT8)
set_attr(node(g, "quantize_linear"), "scale", FLOAT, float("inf"))
write("invalid-quantize-linear-scale-inf.kgraph", g)
for name, zp in [("256", 256), ("2-32", 1 << 32), ("negative", -1)]:
    g = seed(INT8)
    set_attr(node(g, "quantize_linear"), "zero_point", INT, zp)
    write("invalid-quantize-linear-zero-point-%s.kgraph" % name, g)
g = seed(INT8)
set_attr(node(g, "dequantize_linear"), "zero_point", INT, 300)
write("invalid-dequantize-linear-zero-point-300.kgraph", g)
