#!/usr/bin/env python3
"""Writes the saved-model seed corpus under tests/fuzz/corpus/saved_model/ (standard library only,
deterministic). The format is nn/model_io.h's; weights sections are Kiln checkpoints
(nn/checkpoint.h). Files named valid-* must load and invalid-* must be rejected.
Run from anywhere: python3 tests/fuzz/make_saved_model_corpus.py
"""
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "saved_model")
F32, BF16, S8, U8, S32 = range(5)


def write(name, data):
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, name), "wb") as f:
        f.write(data)


def checkpoint(entries):
    body = b"KILNCKPT" + struct.pack("<II", 1, len(entries))
    for name, dims, values in entries:
        data = struct.pack("<%df" % len(values), *values)
        body += struct.pack("<I", len(name)) + name.encode() + struct.pack("<BB", F32, len(dims))
        body += b"".join(struct.pack("<q", d) for d in dims) + struct.pack("<Q", len(data)) + data
    return body + struct.pack("<I", zlib.crc32(body))


def weights(specs, seed):
    """[(name, dims)] -> checkpoint entries with small deterministic values."""
    out = []
    for k, (name, dims) in enumerate(specs):
        n = 1
        for d in dims:
            n *= d
        out.append((name, dims, [((i * 7 + k * 3 + seed) % 11 - 5) / 8.0 for i in range(n)]))
    return out


def saved_model(arch, entries, compile_state=None, slots=None, version=1, tags=None):
    sections = [("ARCH", json.dumps(arch).encode()), ("WGTS", checkpoint(entries))]
    if compile_state is not None:
        sections += [("COMP", json.dumps(compile_state).encode()), ("OPTS", checkpoint(slots or []))]
    if tags:
        sections = [(t, b) for t, (_, b) in zip(tags, sections)]
    body = b"KILNMODL" + struct.pack("<II", version, len(sections))
    for tag, data in sections:
        body += tag.encode() + struct.pack("<Q", len(data)) + data
    return body + struct.pack("<I", zlib.crc32(body))


def saved_model_raw(b):
    """Re-frames a file whose ARCH text was edited: fixes the section length and the CRC."""
    body = b[:-4]
    arch_len_at = 16 + 4
    (n,) = struct.unpack("<Q", body[arch_len_at:arch_len_at + 8])
    start = arch_len_at + 8
    end = body.index(b"WGTS", start)
    body = body[:arch_len_at] + struct.pack("<Q", end - start) + body[start:]
    return body + struct.pack("<I", zlib.crc32(body))


def layer(cls, name, inbound=None, **config):
    entry = {"class_name": cls, "name": name, "config": dict(name=name, **config)}
    entry["inbound_nodes"] = [[[n, i, 0] for n, i in call] for call in (inbound or [])]
    return entry


def input_layer(name, dims, dtype="float32"):
    return {"class_name": "InputLayer", "name": name,
            "config": {"batch_shape": [None] + dims, "dtype": dtype, "name": name}, "inbound_nodes": []}


def functional(name, layers, inputs, outputs):
    return {"name": name, "layers": layers, "input_layers": [[n, 0, 0] for n in inputs],
            "output_layers": [[n, i, 0] for n, i in outputs]}


# --- Sequential MLP on u8 images: Rescaling, Flatten, Dense, Dropout, Dense ---
mlp = {"class_name": "Sequential", "config": {
    "name": "mlp", "layers": [
        {"class_name": "Rescaling", "config": {"name": "rescaling", "scale": 0.25, "offset": -1.0}},
        {"class_name": "Flatten", "config": {"name": "flatten"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "relu"}},
        {"class_name": "Dropout", "config": {"name": "dropout", "rate": 0.25, "seed": 7}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 3, "activation": "softmax"}}],
    "build_input_shape": [None, 4, 4, 1], "input_dtype": "uint8"}}
mlp_weights = weights([("dense/kernel", [16, 4]), ("dense/bias", [4]), ("dense_1/kernel", [4, 3]),
                       ("dense_1/bias", [3])], 1)
write("valid-sequential-mlp.kmodel", saved_model(mlp, mlp_weights))

# --- Functional residual block: Conv2D, BatchNormalization, ReLU, Add, pooling, Dense, Softmax ---
res = {"class_name": "Functional", "config": functional("residual", [
    input_layer("image", [5, 5, 2]),
    layer("Conv2D", "conv", [[("image", 0)]], filters=2, kernel_size=[3, 3], padding="same", use_bias=False),
    layer("BatchNormalization", "bn", [[("conv", 0)]], momentum=0.5, epsilon=0.001),
    layer("Activation", "relu", [[("bn", 0)]], activation="relu"),
    layer("Add", "add", [[("relu", 0), ("image", 0)]]),
    layer("MaxPooling2D", "pool", [[("add", 0)]], pool_size=[2, 2], padding="valid"),
    layer("GlobalAveragePooling2D", "gap", [[("pool", 0)]]),
    layer("Dense", "head", [[("gap", 0)]], units=3),
    layer("Softmax", "softmax", [[("head", 0)]], axis=-1)], ["image"], [("softmax", 0)])}
res_weights = weights([("conv/kernel", [3, 3, 2, 2]), ("bn/gamma", [2]), ("bn/beta", [2]), ("bn/moving_mean", [2]),
                       ("bn/moving_variance", [2]), ("head/kernel", [2, 3]), ("head/bias", [3])], 2)
for e in res_weights:  # a variance must not be negative for the model to make sense
    if e[0] == "bn/moving_variance":
        e[2][:] = [0.5, 1.5]
write("valid-functional-residual.kmodel", saved_model(res, res_weights))

# --- Nested: a functional block called twice, then a nested Sequential head; two inputs ---
block = functional("block", [input_layer("bin", [3]), layer("Dense", "bd", [[("bin", 0)]], units=3, activation="tanh")],
                   ["bin"], [("bd", 0)])
head = {"name": "head", "layers": [{"class_name": "Dense", "config": {"name": "hd", "units": 2}}],
        "build_input_shape": [None, 3]}
nested = {"class_name": "Functional", "config": functional("nested", [
    input_layer("a", [3]), input_layer("b", [3], "uint8"),
    {"class_name": "Functional", "name": "block", "config": block,
     "inbound_nodes": [[["a", 0, 0]], [["block", 0, 0]]]},
    layer("Rescaling", "scale_b", [[("b", 0)]], scale=0.5),
    layer("Add", "sum", [[("block", 1), ("scale_b", 0)]]),
    {"class_name": "Sequential", "name": "head", "config": head, "inbound_nodes": [[["sum", 0, 0]]]}],
    ["a", "b"], [("head", 0), ("block", 0)])}
nested_weights = weights([("bd/kernel", [3, 3]), ("bd/bias", [3]), ("hd/kernel", [3, 2]), ("hd/bias", [2])], 3)
write("valid-nested-two-inputs.kmodel", saved_model(nested, nested_weights))

# --- Compiled: Adam with a warmed-up cosine schedule, slots and a step count ---
small = {"class_name": "Sequential", "config": {
    "name": "small", "layers": [{"class_name": "Dense", "config": {"name": "d", "units": 2}}],
    "build_input_shape": [None, 3]}}
small_weights = weights([("d/kernel", [3, 2]), ("d/bias", [2])], 4)
adam = {"optimizer": {"class_name": "Adam", "config": {
    "name": "Adam", "beta_1": 0.875, "amsgrad": False, "learning_rate": {"class_name": "LinearWarmup", "config": {
        "warmup_steps": 10, "after": {"class_name": "CosineDecay", "config": {
            "initial_learning_rate": 0.125, "decay_steps": 100, "alpha": 0.0}}}}}},
    "loss": {"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}},
    "metrics": ["accuracy"], "iterations": 5}
adam_slots = weights([("d/kernel/m", [3, 2]), ("d/kernel/v", [3, 2]), ("d/bias/m", [2]), ("d/bias/v", [2])], 5)
for e in adam_slots:  # second moments are not negative
    if e[0].endswith("/v"):
        e[2][:] = [abs(v) for v in e[2]]
write("valid-compiled-adam.kmodel", saved_model(small, small_weights, adam, adam_slots))
sgd = {"optimizer": {"class_name": "SGD", "config": {"learning_rate": 0.5, "momentum": 0.75, "nesterov": True,
                                                     "clipvalue": 1.0}},
       "loss": {"class_name": "MeanSquaredError", "config": {}}, "metrics": [], "iterations": 0}
write("valid-compiled-sgd-no-slots.kmodel", saved_model(small, small_weights, sgd, []))

# --- Pooling and a mixed-precision Dense ---
pool = {"class_name": "Sequential", "config": {
    "name": "pool", "layers": [
        {"class_name": "AveragePooling2D", "config": {"name": "avg", "pool_size": 2, "strides": [1, 2], "padding": "same"}},
        {"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": [2, 1], "dilation_rate": [2, 1],
                                            "groups": 2, "activation": "sigmoid"}},
        {"class_name": "Flatten", "config": {"name": "f"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "dtype": "mixed_bfloat16", "use_bias": False}}],
    "build_input_shape": [None, 4, 4, 2]}}
write("valid-pooling-bf16.kmodel", saved_model(pool, weights([("c/kernel", [2, 1, 1, 2]), ("c/bias", [2]),
                                                               ("d/kernel", [8, 2])], 6)))

# --- Invalid files ---
good = saved_model(small, small_weights)
write("invalid-bad-crc.kmodel", good[:40] + bytes([good[40] ^ 1]) + good[41:])
write("invalid-version-2.kmodel", saved_model(small, small_weights, version=2))
write("invalid-sections-swapped.kmodel", saved_model(small, small_weights, tags=["WGTS", "ARCH"]))
write("invalid-trailing-byte.kmodel", good[:-4] + b"\0" + struct.pack("<I", zlib.crc32(good[:-4] + b"\0")))
unknown = json.loads(json.dumps(small))
unknown["config"]["layers"][0]["class_name"] = "Attention"
write("invalid-unknown-layer.kmodel", saved_model(unknown, small_weights))
big = json.loads(json.dumps(small))
big["config"]["layers"][0]["config"]["units"] = 1 << 30
write("invalid-weights-beyond-file.kmodel", saved_model(big, small_weights))
huge_in = json.loads(json.dumps(small))
huge_in["config"]["build_input_shape"] = [None, 1 << 30, 1 << 30]
write("invalid-huge-input.kmodel", saved_model(huge_in, small_weights))
cycle = json.loads(json.dumps(res))
cycle["config"]["layers"][1]["inbound_nodes"] = [[["softmax", 0, 0]]]
write("invalid-cycle.kmodel", saved_model(cycle, res_weights))
deep = saved_model({"class_name": "Sequential", "config": "@"}, [])
write("invalid-deep-json.kmodel", saved_model_raw(deep.replace(b'"@"', b"[" * 200 + b"]" * 200)))
write("invalid-renamed-weight.kmodel", saved_model(small, [("d/kernel", [3, 2], [0.0] * 6), ("d/b", [2], [0.0] * 2)]))

# --- Regressions (issue 26), under regressions/saved_model: each must be rejected ---
REGRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions", "saved_model")


def write_regression(name, data):
    os.makedirs(REGRESSIONS, exist_ok=True)
    with open(os.path.join(REGRESSIONS, name), "wb") as f:
        f.write(data)


# A step count at INT64_MAX loaded, and the first fit step overflowed.
at_max = json.loads(json.dumps(adam))
at_max["iterations"] = (1 << 63) - 1
write_regression("invalid-iterations-int64-max.kmodel", saved_model(small, small_weights, at_max, adam_slots))
past_limit = json.loads(json.dumps(adam))
past_limit["iterations"] = 1 << 62
write_regression("invalid-iterations-2-62.kmodel", saved_model(small, small_weights, past_limit, adam_slots))
# One input dimension of 1,048,576 in a few-KB file: each probe stays under the per-tensor
# limit, but together they drove memory to gigabytes while loading.
wide_res = json.loads(json.dumps(res))
wide_res["config"]["layers"][0]["config"]["batch_shape"] = [None, 1 << 20, 5, 2]
write_regression("invalid-wide-input-residual.kmodel", saved_model(wide_res, res_weights))
