"""Times ONNX Runtime on a model exported by Kiln, for inference_compare.py.

    ort_infer_bench.py --onnx model.onnx --batch 1 --seconds 3 --threads 2
prints "calls=<n> p50_us=<v> p99_us=<v> images_per_sec=<v>" like kiln_infer_bench.
Runs in the repo's .venv (onnxruntime from PyPI, installed by scripts/setup).
"""
import argparse
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.onnx, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [a.batch] + [int(d) for d in inp.shape[1:]]
    rng = np.random.default_rng(7)
    if inp.type == "tensor(uint8)":
        x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    else:
        x = rng.uniform(-1, 1, size=shape).astype(np.float32)
    feed = {inp.name: x}
    for _ in range(5):
        sess.run(None, feed)
    us = []
    start = time.perf_counter()
    while time.perf_counter() - start < a.seconds or len(us) < 5:
        t0 = time.perf_counter()
        sess.run(None, feed)
        us.append((time.perf_counter() - t0) * 1e6)
    total = time.perf_counter() - start
    s = sorted(us)
    pct = lambda p: s[min(len(s) - 1, int(p * len(s)))]
    print("calls=%d p50_us=%.2f p99_us=%.2f images_per_sec=%.2f ort_version=%s"
          % (len(us), pct(0.5), pct(0.99), len(us) * a.batch / total, ort.__version__))


if __name__ == "__main__":
    main()
