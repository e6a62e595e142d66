"""Writes the foreign ONNX test models: torchvision nets exported by torch.onnx.export.

Runs in the peers venv (scripts/setup --peers pins torch 2.8.0, torchvision 0.23.0, onnx 1.23.2);
CI never runs it, it reads the checked-in outputs. For each model NAME it writes NAME.onnx, the
fixed input NAME.input.npy (float32 NCHW) and PyTorch's output NAME.output.npy (float32); the
CNNs of write_cnn_models are NAME.opsetK.onnx at several opsets beside one input and output,
plus convnext.external.onnx (+ .data) and mobilenet_v3_small.dynamo.onnx (dynamo exporter).
Usage: .venv-peers/bin/python tests/data/foreign_onnx/make_models.py [out_dir]
"""
import os
import sys

import numpy as np
import onnx
import onnx.version_converter
import torch
import torchvision
from torchvision.models import convnext, efficientnet


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
        if isinstance(m, torch.nn.LayerNorm):
            n = m.normalized_shape[0]
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
        elif isinstance(m, convnext.CNBlock):
            # ConvNeXt's layer scale starts at 1e-6: the block would be the identity to a 1e-4 test.
            m.layer_scale.data.copy_(torch.rand(m.layer_scale.shape, generator=g) * 0.5 + 0.5)
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


# The TorchScript exporter writes opsets up to 20; 21 comes from onnx's version converter.
OPSETS = [11, 13, 17, 18, 20, 21]


def export_at(model, x, path, opset):
    """torch.onnx.export (TorchScript) at `opset`, batch dimension symbolic."""
    names = dict(input_names=["input"], output_names=["logits"],
                 dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    if opset <= 20:
        torch.onnx.export(model, (x,), path, opset_version=opset, dynamo=False, **names)
        return
    export_at(model, x, path, 20)
    converted = onnx.version_converter.convert_version(onnx.load(path), opset)
    converted.ir_version = 10  # opset 21's IR version; the converter leaves the older one
    onnx.checker.check_model(converted)
    onnx.save(converted, path)


def write_dynamo_export(model, x, path):
    """The dynamo exporter (torch.export + onnxscript; pinned in scripts/setup --peers): opset 18,
    IR 10, BatchNorm folded into Conv, ReduceMean with its axes as an input, a static batch."""
    program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, input_names=["input"],
                                output_names=["logits"])
    program.save(path)


def efficientnet_b0():
    # torchvision's EfficientNet-B0 block list (MBConv, SiLU, squeeze-excite, stochastic depth) at
    # a quarter of its width: 0.33M weights instead of 5.3M.
    setting, last_channel = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=1.0)
    torch.manual_seed(3)
    return efficientnet.EfficientNet(setting, dropout=0.2, num_classes=10, last_channel=last_channel)


def convnext_reduced():
    # torchvision's ConvNeXt (stem, CNBlocks: depthwise 7x7, permute to NHWC, LayerNorm, Linear,
    # GELU, Linear, layer scale, stochastic depth; LayerNorm2d downsampling) with two small stages.
    torch.manual_seed(4)
    stages = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
    return convnext.ConvNeXt(stages, stochastic_depth_prob=0.1, num_classes=10)


class CnnOps(torch.nn.Module):
    """The opset-dependent ops torch writes around CNNs, in one small net: pooling with ceil_mode
    and count_include_pad, ReduceMean, Pow, Sqrt, Div, Sub, Reciprocal, tanh GELU, Softmax over
    channels and LogSoftmax."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        f = torch.nn.functional
        y = self.conv(x)  # 15x15: every pool below takes ceil_mode's extra window
        a = f.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)
        b = f.avg_pool2d(y, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
        c = f.avg_pool2d(y, 2, stride=2, ceil_mode=True, count_include_pad=False)
        d = f.avg_pool2d(y, 3, stride=2, padding=1, count_include_pad=True)
        z = a + b - c * d
        m = z.mean((2, 3), keepdim=True)
        z = (z - m) / torch.sqrt(z.pow(2).mean(1, keepdim=True) + 1e-3)
        z = z * torch.reciprocal(1.5 + m.abs())
        z = f.gelu(z, approximate="tanh")
        h = torch.softmax(z, dim=1).mean((2, 3))
        return torch.log_softmax(self.fc(h) * 4.0, dim=-1)


def write_cnn_models(out):
    """EfficientNet-B0, a reduced ConvNeXt and CnnOps, each at several opsets (NAME.opsetK.onnx
    beside one NAME.input.npy and NAME.output.npy), and the ConvNeXt again with its weights in a
    side file (save_as_external_data)."""
    nets = [("efficientnet_b0", efficientnet_b0(), (2, 3, 64, 64), [11, 17, 21]),
            ("convnext", convnext_reduced(), (2, 3, 32, 32), OPSETS),
            ("cnn_ops", CnnOps(), (2, 3, 15, 15), OPSETS)]
    for i, (name, model, shape, opsets) in enumerate(nets):
        randomize_batchnorm(model, 300 + i)
        model.eval()
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(400 + i))
        with torch.no_grad():
            y = model(x)
        np.save(os.path.join(out, name + ".input.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out, name + ".output.npy"), y.numpy().astype(np.float32))
        for opset in opsets:
            export_at(model, x, os.path.join(out, "%s.opset%d.onnx" % (name, opset)), opset)
    external = onnx.load(os.path.join(out, "convnext.opset17.onnx"))
    onnx.save_model(external, os.path.join(out, "convnext.external.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="convnext.external.data", size_threshold=0)


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
        if name == "mobilenet_v3_small":
            write_dynamo_export(model, x, os.path.join(out, name + ".dynamo.onnx"))
    write_cnn_models(out)
    fuzz_corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "corpus", "onnx")
    write_fuzz_seed(os.path.join(fuzz_corpus, "valid-exported-torch-0.onnx"))


if __name__ == "__main__":
    main()
