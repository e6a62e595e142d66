#!/usr/bin/env python3
"""Checks a Kiln ONNX export outside Kiln (tests/onnx_export_test runs it).

  onnx_check.py check MODEL.onnx
      onnx.checker.check_model(full_check=True); run it with /usr/bin/python3 (Debian's
      python3-onnx 1.12, which checks IR version 8 / opset 17).
  onnx_check.py run MODEL.onnx OUT_DIR INPUT.npy [INPUT.npy ...]
      Runs the model in ONNX Runtime (CPUExecutionProvider, 2 threads) on the inputs, in the
      order of the model's inputs, and writes OUT_DIR/output_<i>.npy; run it with the venv that
      scripts/setup makes (.venv/bin/python, onnxruntime 1.31.1 from PyPI).
"""
import os
import sys


def check(path):
    import onnx

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    print(f"onnx.checker: {path} passes (ir_version {model.ir_version}, "
          f"opset {[o.version for o in model.opset_import]}, onnx {onnx.__version__})")


def run(path, out_dir, inputs):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        sys.exit(f"{path} takes {len(names)} inputs, got {len(inputs)}")
    feeds = {name: np.load(p) for name, p in zip(names, inputs)}
    outputs = session.run(None, feeds)
    for i, y in enumerate(outputs):
        np.save(os.path.join(out_dir, f"output_{i}.npy"), np.ascontiguousarray(y))
    print(f"onnxruntime {ort.__version__}: {path} -> {len(outputs)} outputs")


def main(argv):
    if len(argv) >= 2 and argv[0] == "check":
        check(argv[1])
    elif len(argv) >= 3 and argv[0] == "run":
        run(argv[1], argv[2], argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
