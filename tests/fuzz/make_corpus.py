#!/usr/bin/env python3
"""Writes the seed corpus under tests/fuzz/corpus/ (standard library only, deterministic).

Files named valid-* must load and invalid-* must be rejected (the driver checks both); other
names carry no expectation. Run from anywhere: python3 tests/fuzz/make_corpus.py
"""
import gzip
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(fmt, name, data):
    os.makedirs(os.path.join(ROOT, fmt), exist_ok=True)
    with open(os.path.join(ROOT, fmt, name), "wb") as f:
        f.write(data)


# --- Kiln checkpoint v1 (nn/checkpoint.h) ---
F32, BF16, S8, U8, S32 = range(5)


def entry(name, dtype, dims, data, nbytes=None):
    out = struct.pack("<I", len(name)) + name + struct.pack("<BB", dtype, len(dims))
    out += b"".join(struct.pack("<q", d) for d in dims)
    return out + struct.pack("<Q", len(data) if nbytes is None else nbytes) + data


def checkpoint(entries, count=None, tail=b""):
    body = b"KILNCKPT" + struct.pack("<II", 1, len(entries) if count is None else count) + b"".join(entries) + tail
    return body + struct.pack("<I", zlib.crc32(body))


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def bf16(*v):
    return b"".join(struct.pack("<f", x)[2:] for x in v)


three = [entry(b"dense/kernel", F32, [2, 3], f32(0.5, -1, 2, 0, 3.25, -7)),
         entry(b"dense/bias", BF16, [3], bf16(1, -2, 0.5)),
         entry(b"mask", U8, [0, 4], b"")]
write("checkpoint", "valid-three-dtypes.ckpt", checkpoint(three))
write("checkpoint", "valid-scalar-and-s8.ckpt",
      checkpoint([entry(b"step", S32, [], struct.pack("<i", 42)), entry(b"q", S8, [5], bytes([1, 255, 127, 128, 0]))]))
write("checkpoint", "valid-no-entries.ckpt", checkpoint([]))
bad = bytearray(checkpoint(three))
bad[60] ^= 1
write("checkpoint", "invalid-bad-crc.ckpt", bytes(bad))
write("checkpoint", "invalid-trailing-byte.ckpt", checkpoint(three, tail=b"\0"))
write("checkpoint", "invalid-count-too-big.ckpt", checkpoint(three, count=4))
# 2^62 * 4 * 4 bytes wraps to 0 in 64 bits.
write("checkpoint", "invalid-overflowing-dims.ckpt", checkpoint([entry(b"w", F32, [1 << 62, 4], b"", nbytes=0)]))
write("checkpoint", "invalid-negative-dim.ckpt", checkpoint([entry(b"w", F32, [-1, 4], b"", nbytes=0)]))
write("checkpoint", "invalid-duplicate-name.ckpt", checkpoint([three[0], three[0]]))


# --- NumPy .npy, byte for byte as numpy's format.write_array writes it ---
def npy(descr, shape, data, version=(1, 0), fortran=False, extra=""):
    header = "{'descr': %r, 'fortran_order': %r, 'shape': %r, %s}" % (descr, fortran, tuple(shape), extra)
    if shape:  # numpy >= 1.24 leaves room to grow the first dim in place
        header += " " * (21 - len(repr(shape[-1 if fortran else 0])))
    raw = header.encode("latin1" if version < (3, 0) else "utf8")
    fmt = "<H" if version == (1, 0) else "<I"
    hlen = len(raw) + 1
    pad = 64 - ((8 + struct.calcsize(fmt) + hlen) % 64)
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, hlen + pad) + raw + b" " * pad + b"\n" + data


write("npy", "valid-v1-f4-2x3.npy", npy("<f4", [2, 3], f32(1, 2, 3, -4, 0.5, 6)))
write("npy", "valid-v1-i4-5.npy", npy("<i4", [5], struct.pack("<5i", 1, -2, 3, 2**31 - 1, -2**31)))
write("npy", "valid-v1-u1-scalar.npy", npy("|u1", [], b"\xfe"))
write("npy", "valid-v1-i1-4.npy", npy("|i1", [4], bytes([0, 1, 127, 128])))
write("npy", "valid-v1-f8-2x2.npy", npy("<f8", [2, 2], struct.pack("<4d", 1.5, -2.25, 1e30, float("nan"))))
write("npy", "valid-v1-i8-3.npy", npy("<i8", [3], struct.pack("<3q", 7, -2**31, 2**31 - 1)))
write("npy", "valid-v1-f4-0x3.npy", npy("<f4", [0, 3], b""))
write("npy", "valid-v1-u1-2x0x4.npy", npy("|u1", [2, 0, 4], b""))
write("npy", "valid-v2-f4-3.npy", npy("<f4", [3], f32(1, 2, 3), version=(2, 0)))
write("npy", "valid-v3-u1-2x2.npy", npy("|u1", [2, 2], bytes([1, 2, 3, 4]), version=(3, 0)))
write("npy", "invalid-fortran-2x3.npy", npy("<f4", [2, 3], f32(*range(6)), fortran=True))
write("npy", "invalid-big-endian.npy", npy(">f4", [2], struct.pack(">2f", 1, 2)))
write("npy", "invalid-truncated-data.npy", npy("<f4", [2, 3], f32(1, 2, 3)))
write("npy", "invalid-negative-dim.npy", npy("<f4", [-1], b""))
write("npy", "invalid-shape-not-tuple.npy", npy("<f4", [3], f32(1, 2, 3)).replace(b"(3,)", b"(3) "))
write("npy", "invalid-extra-key.npy", npy("<f4", [1], f32(1), extra="'x': 1, "))
write("npy", "f8-out-of-f32-range.npy", npy("<f8", [2], struct.pack("<2d", 1e300, -1e39)))
write("npy", "invalid-huge-dims.npy", npy("<f4", [1 << 62, 4], b""))


# --- IDX (MNIST), plain and gzip ---
def idx(type_code, dims, data):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


write("idx", "valid-u8-2x3.idx", idx(0x08, [2, 3], bytes(range(6))))
write("idx", "valid-s8-3.idx", idx(0x09, [3], bytes([0, 255, 128])))
write("idx", "valid-s32-4.idx", idx(0x0C, [4], struct.pack(">4i", 1, -1, 2**31 - 1, -2**31)))
write("idx", "valid-f32-2x2.idx", idx(0x0D, [2, 2], struct.pack(">4f", 1.5, -2, 0, 1e30)))
write("idx", "valid-u8-0x5x5.idx", idx(0x08, [0, 5, 5], b""))
write("idx", "valid-u8-1x2x2.idx.gz", gz(idx(0x08, [1, 2, 2], bytes([0, 128, 255, 7]))))
write("idx", "valid-f32-3.idx.gz", gz(idx(0x0D, [3], struct.pack(">3f", 0.25, -8, 3))))
write("idx", "invalid-trailing-byte.idx", idx(0x08, [2], b"\x01\x02\x03"))
write("idx", "invalid-f64-type.idx", idx(0x0E, [1], struct.pack(">d", 1.0)))
write("idx", "invalid-huge-dims.idx", idx(0x0D, [0xFFFFFFFF, 0xFFFFFFFF], b""))
good_gz = gz(idx(0x08, [2, 3], bytes(range(6))))
write("idx", "invalid-truncated-trailer.idx.gz", good_gz[:-3])
write("idx", "invalid-bad-crc.idx.gz", good_gz[:-8] + bytes([good_gz[-8] ^ 1]) + good_gz[-7:])

# --- CSV ---
write("csv", "valid-plain.csv", b"1,2,3\n4,5,6\n")
write("csv", "valid-floats-no-final-newline.csv", b"1.5,-2\n3e2,0.25\n-0.125,7")
write("csv", "valid-crlf.csv", b"1,2\r\n3,4\r\n")
write("csv", "valid-nan-inf.csv", b"nan,inf\n-inf,1e-3\n")
write("csv", "valid-single.csv", b"42\n")
write("csv", "header-crlf.csv", b"x,y\r\n1,2\r\n3,4\r\n")
write("csv", "blank-lines.csv", b"1,2\n\n3,4\n")
write("csv", "invalid-ragged.csv", b"1,2\n3\n")
write("csv", "invalid-text-cell.csv", b"1,abc\n")
write("csv", "invalid-empty.csv", b"")
