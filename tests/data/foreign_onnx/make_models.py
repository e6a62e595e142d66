"""Writes the foreign ONNX test models: torchvision nets exported by torch.onnx.export.

Runs in the peers venv (scripts/setup --peers pins torch 2.8.0, torchvision 0.23.0, onnx 1.23.2);
CI never runs it, it reads the checked-in outputs. For each model NAME it writes NAME.onnx, the
fixed input NAME.input.npy (float32 NCHW) and PyTorch's output NAME.output.npy (float32).
Usage: .venv-peers/bin/python tests/data/foreign_onnx/make_models.py [out_dir]
"""
import os
import sys

import numpy as np
import torch
import torchvision


def models():
    # resnet18's 11.7M weights are 45 MB of ONNX; one BasicBlock per stage (torchvision's own
    # ResNet class, the same ops) keeps the checked-in files small.
    torch.manual_seed(0)
    resnet = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=10)
    torch.manual_seed(1)
    mobilenet = torchvision.models.mobilenet_v3_small(num_classes=10, width_mult=0.5)
    return [("resnet10", resnet, (2, 3, 32, 32)), ("mobilenet_v3_small", mobilenet, (2, 3, 64, 64))]


def randomize_batchnorm(model, seed):
    # Fresh BatchNorm statistics are mean 0, var 1: a test would not notice them ignored.
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
        elif isinstance(m, torch.nn.Linear):
            # torchvision's N(0, 0.01) classifier gives logits near 1e-2, too small for a 1e-4 check to mean much.
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)


class TinyTorchOps(torch.nn.Module):
    """A few-KB model with the ops torch.onnx.export writes for the nets above: a fuzz seed."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1, groups=1)
        self.dw = torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 2 * 2, 3)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        y = torch.nn.functional.hardswish(self.conv(x))
        y = y * torch.nn.functional.hardsigmoid(self.dw(y).mean((2, 3), keepdim=True))
        y = torch.nn.functional.relu6(self.bn(y))
        y = torch.nn.functional.max_pool2d(y, 2)
        return self.fc(self.drop(torch.flatten(y, 1)))


def write_fuzz_seed(path):
    torch.manual_seed(2)
    model = TinyTorchOps().eval()
    torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), path, opset_version=17, dynamo=False,
                      do_constant_folding=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


QDQ_VARIANTS = {
    # ONNX Runtime's defaults for CNNs on x86: u8 activations with zero points (asymmetric).
    "qdq_u8": {"activation_type": "QUInt8", "extra_options": {}},
    # s8 activations, symmetric (zero point 0 everywhere).
    "qdq_s8": {"activation_type": "QInt8", "extra_options": {"ActivationSymmetric": True}},
}


def write_qdq_models(out, name="mobilenet_v3_small", images=8):
    """NAME.qdq_u8.onnx / NAME.qdq_s8.onnx: NAME.onnx quantized by ONNX Runtime's own quantize_static
    (QDQ format, per-channel s8 weights, calibrated on `images` random images), with
    NAME.qdq.input.npy (`images` other images) and ONNX Runtime's outputs on it, NAME.VARIANT.output.npy."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    float_model = os.path.join(out, name + ".onnx")
    shape = np.load(os.path.join(out, name + ".input.npy")).shape[1:]
    calibration = np.random.default_rng(300).standard_normal((images,) + shape).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calibration[i:i + 1]} for i in range(images)])

        def get_next(self):
            return next(self.batches, None)

    x = np.random.default_rng(301).standard_normal((images,) + shape).astype(np.float32)
    np.save(os.path.join(out, name + ".qdq.input.npy"), x)
    for variant, options in QDQ_VARIANTS.items():
        path = os.path.join(out, name + "." + variant + ".onnx")
        quantize_static(float_model, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=getattr(QuantType, options["activation_type"]), weight_type=QuantType.QInt8,
                        extra_options=options["extra_options"])
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        np.save(os.path.join(out, name + "." + variant + ".output.npy"), session.run(None, {"input": x})[0])


def write_qdq_fuzz_seed(float_seed, path):
    """The fuzz seed above quantized by ONNX Runtime (QDQ, u8 activations): a QDQ fuzz seed of a few KB."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            g = np.random.default_rng(302)
            self.batches = iter([{"input": g.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(float_seed, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for i, (name, model, shape) in enumerate(models()):
        randomize_batchnorm(model, 100 + i)
        model.eval()
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(200 + i))
        with torch.no_grad():
            y = model(x)
        np.save(os.path.join(out, name + ".input.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out, name + ".output.npy"), y.numpy().astype(np.float32))
        torch.onnx.export(model, (x,), os.path.join(out, name + ".onnx"), opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        # The dynamo exporter needs onnxscript, which the peers venv does not pin: not written yet.
    write_qdq_models(out)
    fuzz_corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "corpus", "onnx")
    write_fuzz_seed(os.path.join(fuzz_corpus, "valid-exported-torch-0.onnx"))
    write_qdq_fuzz_seed(os.path.join(fuzz_corpus, "valid-exported-torch-0.onnx"),
                        os.path.join(fuzz_corpus, "valid-exported-torch-qdq-0.onnx"))


if __name__ == "__main__":
    main()
