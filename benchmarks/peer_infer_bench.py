"""The inference peers of //benchmarks:inference, on the ONNX file Kiln exported, run from
.venv-peers (bash scripts/setup --peers):
  ort       ONNX Runtime fp32;
  ort_qdq   ONNX Runtime int8 from its own quantize_static: QDQ format, per-channel weights;
  ort_qop   the same in QOperator format (QLinearConv, QLinearMatMul, ...);
  ov        OpenVINO fp32 (inference precision pinned to f32);
  ov_int8   OpenVINO int8 from NNCF post-training quantization (nncf.quantize).
Every int8 peer calibrates on the same images as Kiln's int8 model (the .npy kiln_infer_bench
writes).

  peer_infer_bench.py --prepare ort_qdq --onnx m.onnx --calib calib.npy --out m_qdq.onnx [--calib_batch B]
      makes the engine's model file (ort_qdq, ort_qop: a quantized .onnx; ov_int8: an OpenVINO .xml);
      --calib_batch feeds the calibration images in whole batches of B (a file that runs only at
      the batch it was traced with), else in batches of 32 (ONNX Runtime) or 1 (NNCF)
  peer_infer_bench.py --engine ort --model_file m.onnx --batch 32 --seconds 2 --threads 2
      prints "calls=<n> p50_us=<v> p99_us=<v> images_per_sec=<v> version=<v>" like kiln_infer_bench
  peer_infer_bench.py --engine ov_int8 --model_file m_int8.xml --accuracy_x x.npy --accuracy_y y.npy
      prints "accuracy=<top-1>" instead of timing
"""
import argparse
import os
import tempfile
import time

import numpy as np

ENGINES = ["ort", "ort_qdq", "ort_qop", "ov", "ov_int8"]
ACCURACY_BATCH = 250  # divides Fashion-MNIST's 10000 test images: OpenVINO runs one static shape


def calibration_batches(calib, default, fixed):
    """The calibration images in batches of `fixed` (whole batches only), else of `default`."""
    if not fixed:
        return [calib[i:i + default] for i in range(0, len(calib), default)]
    if fixed > len(calib):
        raise SystemExit("peer_infer_bench: %d calibration images do not fill one batch of %d" % (len(calib), fixed))
    return [calib[i:i + fixed] for i in range(0, len(calib) - fixed + 1, fixed)]


def prepare(a):
    calib = np.load(a.calib)
    if a.prepare in ("ort_qdq", "ort_qop"):
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        class Reader(CalibrationDataReader):
            def __init__(self, name):
                self.batches = iter([{name: b} for b in calibration_batches(calib, 32, a.calib_batch)])

            def get_next(self):
                return next(self.batches, None)

        import onnx
        name = onnx.load(a.onnx).graph.input[0].name
        with tempfile.TemporaryDirectory() as tmp:
            # ONNX Runtime's documented first step: shape inference and graph cleanup.
            pre = os.path.join(tmp, "pre.onnx")
            quant_pre_process(a.onnx, pre)
            quantize_static(pre, a.out, Reader(name),
                            quant_format=QuantFormat.QDQ if a.prepare == "ort_qdq" else QuantFormat.QOperator,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    elif a.prepare == "ov_int8":
        import nncf
        import openvino as ov
        model = ov.Core().read_model(a.onnx)
        batches = calibration_batches(calib, 1, a.calib_batch)
        dataset = nncf.Dataset(batches)
        quantized = nncf.quantize(model, dataset, subset_size=len(batches))
        ov.save_model(quantized, a.out)
    else:
        raise SystemExit("peer_infer_bench: --prepare takes ort_qdq, ort_qop or ov_int8, got %s" % a.prepare)
    print("prepared=%s" % a.out)


def ort_runner(path, threads):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.uint8 if inp.type == "tensor(uint8)" else np.float32
    shape = [int(d) for d in inp.shape[1:]]
    return (lambda x: sess.run(None, {inp.name: x})[0]), dtype, shape, "onnxruntime " + ort.__version__


def ov_runner(path, threads, batch):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    inp = model.inputs[0]
    shape = [int(d.get_length()) for d in inp.get_partial_shape()[1:]]
    model.reshape({inp.get_any_name(): [batch] + shape})  # a static shape, OpenVINO's fast path
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                 "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    dtype = np.uint8 if inp.get_element_type() == ov.Type.u8 else np.float32

    def run(x):
        request.infer({0: x})
        return request.get_output_tensor(0).data

    return run, dtype, shape, "openvino " + ov.__version__.split("-")[0]


def runner(a, batch):
    if a.engine.startswith("ort"):
        return ort_runner(a.model_file, a.threads)
    return ov_runner(a.model_file, a.threads, batch)


def accuracy(a):
    x, y = np.load(a.accuracy_x), np.load(a.accuracy_y)
    if len(x) % ACCURACY_BATCH:
        raise SystemExit("peer_infer_bench: %d images do not split into batches of %d" % (len(x), ACCURACY_BATCH))
    run, _, _, version = runner(a, ACCURACY_BATCH)
    correct = 0
    for i in range(0, len(x), ACCURACY_BATCH):
        correct += int((np.argmax(run(x[i:i + ACCURACY_BATCH]), axis=-1) == y[i:i + ACCURACY_BATCH]).sum())
    print("accuracy=%.4f images=%d version=%s" % (correct / len(x), len(x), version.replace(" ", "_")))


def timing(a):
    run, dtype, shape, version = runner(a, a.batch)
    rng = np.random.default_rng(7)
    if dtype == np.uint8:
        x = rng.integers(0, 256, size=[a.batch] + shape, dtype=np.uint8)
    else:
        x = rng.uniform(-1, 1, size=[a.batch] + shape).astype(np.float32)
    for _ in range(5):
        run(x)
    us = []
    start = time.perf_counter()
    while time.perf_counter() - start < a.seconds or len(us) < 5:
        t0 = time.perf_counter()
        run(x)
        us.append((time.perf_counter() - t0) * 1e6)
    total = time.perf_counter() - start
    s = sorted(us)
    pct = lambda p: s[min(len(s) - 1, int(p * len(s)))]
    print("calls=%d p50_us=%.2f p99_us=%.2f images_per_sec=%.2f version=%s"
          % (len(us), pct(0.5), pct(0.99), len(us) * a.batch / total, version.replace(" ", "_")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepare", choices=["ort_qdq", "ort_qop", "ov_int8"])
    ap.add_argument("--onnx")
    ap.add_argument("--calib")
    ap.add_argument("--out")
    ap.add_argument("--calib_batch", type=int, default=0)
    ap.add_argument("--engine", choices=ENGINES)
    ap.add_argument("--model_file")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--accuracy_x")
    ap.add_argument("--accuracy_y")
    a = ap.parse_args()
    if a.prepare:
        if not (a.onnx and a.calib and a.out):
            ap.error("--prepare needs --onnx, --calib and --out")
        return prepare(a)
    if not (a.engine and a.model_file):
        ap.error("give --prepare, or --engine and --model_file")
    if a.accuracy_x:
        return accuracy(a)
    return timing(a)


if __name__ == "__main__":
    main()
