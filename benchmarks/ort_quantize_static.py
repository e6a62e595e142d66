"""ONNX Runtime's own int8 model for the inference benchmark: onnxruntime.quantization's
quantize_static (QDQ format, per-channel weights, u8 activations / s8 weights, MinMax
calibration) on Kiln's fp32 export, calibrated on the same images Kiln's quant::quantize uses
(kiln_infer_bench --export_calibration writes them as raw f32).

    ort_quantize_static.py --onnx model.onnx --calibration calib.f32 --out model_ort_int8.onnx
Runs in the repo's .venv (onnxruntime from PyPI).
"""
import argparse
import os
import tempfile

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Images(CalibrationDataReader):
    def __init__(self, name, images, batch):
        self.batches = iter([{name: images[i:i + batch]} for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self.batches, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--calibration", required=True, help="raw f32 images, [N, input dims...] row-major")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=64, help="calibration batch (Kiln's is 64)")
    a = ap.parse_args()
    model = onnx.load(a.onnx)
    inp = model.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise SystemExit("ort_quantize_static: %s's input '%s' is not float; quantize_static calibrates f32 inputs"
                         % (a.onnx, inp.name))
    images = np.fromfile(a.calibration, dtype=np.float32)
    per_image = int(np.prod(dims))
    if images.size == 0 or images.size % per_image:
        raise SystemExit("ort_quantize_static: %s holds %d floats, not a whole number of %s images"
                         % (a.calibration, images.size, dims))
    images = images.reshape([-1] + dims)
    # ONNX Runtime's documented recipe: pre-process (shape inference, graph optimization) first.
    with tempfile.TemporaryDirectory() as tmp:
        prepped = os.path.join(tmp, "prepped.onnx")
        quant_pre_process(a.onnx, prepped)
        quantize_static(prepped, a.out, Images(inp.name, images, a.batch), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    print("quantized=%s calibration_images=%d" % (a.out, len(images)))


if __name__ == "__main__":
    main()
