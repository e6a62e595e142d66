"""Writes the foreign ONNX test models: torchvision nets exported by torch.onnx.export.

Runs in the peers venv (scripts/setup --peers pins torch 2.8.0, torchvision 0.23.0, onnx 1.23.2);
CI never runs it, it reads the checked-in outputs. For each model NAME it writes NAME.onnx, the
fixed input NAME.input.npy (float32 NCHW) and PyTorch's output NAME.output.npy (float32); the
CNNs of write_cnn_models are NAME.opsetK.onnx at several opsets beside one input and output,
plus convnext.external.onnx (+ .data) and mobilenet_v3_small.dynamo.onnx (dynamo exporter).
Usage: .venv-peers/bin/python tests/data/foreign_onnx/make_models.py [out_dir]
"""
import math
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
class BertStyleEncoder(torch.nn.Module):
    """A BERT-style encoder written as Hugging Face's BertModel writes it: token + position
    embeddings, LayerNorm, self-attention with the (1 - mask) * -10000 additive padding mask,
    heads split by view(batch, seq, heads, dim) with the batch read from the input's shape, erf
    GELU, residuals and LayerNorms; the last hidden states out."""

    def __init__(self, vocab=50, seq=12, hidden=32, heads=4, ffn=64, layers=2):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.tokens = torch.nn.Embedding(vocab, hidden)
        self.positions = torch.nn.Embedding(seq, hidden)
        self.register_buffer("position_ids", torch.arange(seq).unsqueeze(0), persistent=False)
        self.ln = torch.nn.LayerNorm(hidden, eps=1e-12)
        self.blocks = torch.nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(torch.nn.ModuleDict({
                "q": torch.nn.Linear(hidden, hidden), "k": torch.nn.Linear(hidden, hidden),
                "v": torch.nn.Linear(hidden, hidden), "o": torch.nn.Linear(hidden, hidden),
                "ln1": torch.nn.LayerNorm(hidden, eps=1e-12), "up": torch.nn.Linear(hidden, ffn),
                "down": torch.nn.Linear(ffn, hidden), "ln2": torch.nn.LayerNorm(hidden, eps=1e-12)}))

    def split_heads(self, x):
        b, s = x.size(0), x.size(1)
        return x.view(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, input_ids, attention_mask):
        s = input_ids.size(1)
        h = self.ln(self.tokens(input_ids) + self.positions(self.position_ids[:, :s]))
        extended = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * -10000.0
        for blk in self.blocks:
            q, k, v = (self.split_heads(blk[n](h)) for n in ("q", "k", "v"))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + extended
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
            ctx = ctx.view(ctx.size(0), ctx.size(1), -1)
            h = blk["ln1"](h + blk["o"](ctx))
            h = blk["ln2"](h + blk["down"](torch.nn.functional.gelu(blk["up"](h))))
        return h


def transformer_models():
    """(name, model, example inputs at the export batch, test inputs at another batch)."""
    torch.manual_seed(3)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64,
                                               mlp_dim=128, num_classes=10).eval()
    g = torch.Generator().manual_seed(300)
    with torch.no_grad():  # torchvision zero-initialises the head and class token: a test would not see them ignored
        vit.heads.head.weight.copy_(torch.randn(vit.heads.head.weight.shape, generator=g) / 8)
        vit.class_token.copy_(torch.randn(vit.class_token.shape, generator=g))
    torch.manual_seed(4)
    bert = BertStyleEncoder().eval()
    g = torch.Generator().manual_seed(301)

    def bert_inputs(batch):
        ids = torch.randint(0, 50, (batch, 12), generator=g)
        mask = torch.ones(batch, 12, dtype=torch.int64)
        for i in range(batch):
            mask[i, 12 - 3 * (i % 3):] = 0  # padded tails of different lengths
        return ids, mask

    vit_export = (torch.randn(2, 3, 32, 32, generator=g),)
    vit_test = (torch.randn(3, 3, 32, 32, generator=g),)
    return [("vit_tiny", vit, vit_export, vit_test, ["input"], ["logits"]),
            ("bert_block", bert, bert_inputs(2), bert_inputs(3), ["input_ids", "attention_mask"], ["hidden"])]


def write_transformer_models(out):
    # Opset 17 has LayerNormalization; opset 14 (the first with the attention's ops torch writes)
    # spells it out as ReduceMean, Sub, Pow, Sqrt, Div. Exported at batch 2, tested at batch 3.
    for name, model, export_inputs, test_inputs, in_names, out_names in transformer_models():
        with torch.no_grad():
            y = model(*test_inputs)
        for i, t in enumerate(test_inputs):
            suffix = "" if len(test_inputs) == 1 else str(i)
            np.save(os.path.join(out, name + ".input" + suffix + ".npy"),
                    t.numpy().astype(np.float32 if t.is_floating_point() else np.int64))
        np.save(os.path.join(out, name + ".output.npy"), y.numpy().astype(np.float32))
        axes = {n: {0: "batch"} for n in in_names + out_names}
        for opset in (17, 14):
            torch.onnx.export(model, export_inputs, os.path.join(out, f"{name}.opset{opset}.onnx"), opset_version=opset,
                              dynamo=False, input_names=in_names, output_names=out_names, dynamic_axes=axes)


class AttentionBlock(torch.nn.Module):
    """LayerNorm, then nn.MultiheadAttention (batch_first, as ViT's encoder blocks call it), plus
    the residual. (torch 2.8 cannot export TransformerEncoderLayer: its is_causal becomes a tensor.)"""

    def __init__(self, dim, heads):
        super().__init__()
        self.ln = torch.nn.LayerNorm(dim)
        self.attention = torch.nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):
        y = self.ln(x)
        return x + self.attention(y, y, y, need_weights=False)[0]


def write_transformer_fuzz_seeds(corpus):
    # A few KB each: torch's attention reshapes ([L, N*H, D], [L*N, E]) and its written-out
    # LayerNormalization (opset 14), and the BERT-style block's shape subgraphs (opset 17).
    torch.manual_seed(5)
    layer = AttentionBlock(8, 2).eval()
    torch.onnx.export(layer, (torch.randn(2, 3, 8),), os.path.join(corpus, "valid-exported-torch-attention-0.onnx"),
                      opset_version=14, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    torch.manual_seed(6)
    bert = BertStyleEncoder(vocab=5, seq=4, hidden=8, heads=2, ffn=8, layers=1).eval()
    ids, mask = torch.randint(0, 5, (2, 4)), torch.ones(2, 4, dtype=torch.int64)
    torch.onnx.export(bert, (ids, mask), os.path.join(corpus, "valid-exported-torch-bert-0.onnx"), opset_version=17,
                      dynamo=False, input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                      dynamic_axes={n: {0: "batch"} for n in ("input_ids", "attention_mask", "hidden")})

class MaskedAttention(torch.nn.Module):
    """One BERT-style self-attention block over hidden states, masked as PyTorch code writes it:
    scores.masked_fill(padding, -inf) (ONNX Where with a -inf constant), the padding read from an
    INT64 attention_mask (mask == 0: Equal) or a BOOL one (~mask: Not, and mask & (h > 0): And),
    a torch.where leaky activation (Greater, Where) and a standalone torch.erf."""

    def __init__(self, hidden=16, heads=2):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.o = torch.nn.Linear(hidden, hidden)
        self.ln = torch.nn.LayerNorm(hidden)

    def forward(self, x, attention_mask):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        if attention_mask.dtype == torch.bool:
            padding = ~attention_mask[:, None, None, :]
        else:
            padding = attention_mask[:, None, None, :] == 0
        scores = scores.masked_fill(padding, float("-inf"))
        ctx = (torch.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(b, t, -1)
        h = self.ln(x + self.o(ctx))
        positive = h > 0
        if attention_mask.dtype == torch.bool:
            positive = positive & attention_mask[:, :, None]
        return torch.where(positive, h, 0.1 * h) + torch.erf(h)


class ErfNet(torch.nn.Module):
    """A standalone Erf between two Linears (no GELU around it)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.erf(self.a(x)))


def write_mask_models(out):
    """masked_attention.{int64,bool}.opset{14,17,18}.onnx (TorchScript exporter) and
    .dynamo.onnx (dynamo exporter, opset 18), exported at batch 2, with a batch-3 input, its
    INT64 mask (padded tails of lengths 0, 2 and 4) and PyTorch's outputs for both mask dtypes; erf_net.opset17.onnx and
    erf_net.dynamo.onnx with theirs. Each file a few KB."""
    import warnings
    warnings.filterwarnings("ignore")
    torch.manual_seed(7)
    model = MaskedAttention().eval()
    g = torch.Generator().manual_seed(310)
    x_export, x = torch.randn(2, 6, 16, generator=g), torch.randn(3, 6, 16, generator=g)
    mask = torch.ones(3, 6, dtype=torch.int64)
    for i, pad in enumerate((0, 2, 4)):
        if pad:
            mask[i, 6 - pad:] = 0
    np.save(os.path.join(out, "masked_attention.input.npy"), x.numpy())
    np.save(os.path.join(out, "masked_attention.mask.npy"), mask.numpy())  # the BOOL models read it != 0
    batch = torch.export.Dim("batch")
    for kind, m in (("int64", mask), ("bool", mask.bool())):
        with torch.no_grad():
            np.save(os.path.join(out, "masked_attention.%s.output.npy" % kind), model(x, m).numpy())
        args = (x_export, m[:2])
        names = {"input_names": ["x", "attention_mask"], "output_names": ["y"]}
        for opset in (14, 17, 18):
            torch.onnx.export(model, args, os.path.join(out, "masked_attention.%s.opset%d.onnx" % (kind, opset)),
                              opset_version=opset, dynamo=False,
                              dynamic_axes={"x": {0: "batch"}, "attention_mask": {0: "batch"}, "y": {0: "batch"}}, **names)
        program = torch.onnx.export(model, args, dynamo=True, opset_version=18, dynamic_shapes=({0: batch}, {0: batch}),
                                    **names)
        program.save(os.path.join(out, "masked_attention.%s.dynamo.onnx" % kind))
    torch.manual_seed(8)
    erf = ErfNet().eval()
    x_export, x = torch.randn(2, 6, generator=g), torch.randn(4, 6, generator=g)
    np.save(os.path.join(out, "erf_net.input.npy"), x.numpy())
    with torch.no_grad():
        np.save(os.path.join(out, "erf_net.output.npy"), erf(x).numpy())
    names = {"input_names": ["x"], "output_names": ["y"]}
    torch.onnx.export(erf, (x_export,), os.path.join(out, "erf_net.opset17.onnx"), opset_version=17, dynamo=False,
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, **names)
    torch.onnx.export(erf, (x_export,), dynamo=True, opset_version=18, dynamic_shapes=({0: batch},),
                      **names).save(os.path.join(out, "erf_net.dynamo.onnx"))


def write_mask_fuzz_seed(corpus):
    """The BOOL-mask block at hidden 4, one head: Where, Not, And, Greater, Erf in a few KB."""
    torch.manual_seed(9)
    model = MaskedAttention(hidden=4, heads=1).eval()
    mask = torch.tensor([[True, True, False]] * 2)
    torch.onnx.export(model, (torch.randn(2, 3, 4), mask), os.path.join(corpus, "valid-exported-torch-mask-0.onnx"),
                      opset_version=17, dynamo=False, input_names=["x", "attention_mask"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "attention_mask": {0: "batch"}, "y": {0: "batch"}})


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
    fuzz_corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "corpus", "onnx")
    if len(sys.argv) > 1 and sys.argv[1] == "--masks":  # only the masked-attention and Erf models (issue 23)
        out = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__))
        write_mask_models(out)
        write_mask_fuzz_seed(fuzz_corpus)
        return
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
    write_transformer_models(out)
    write_mask_models(out)
    write_mask_fuzz_seed(fuzz_corpus)
    write_fuzz_seed(os.path.join(fuzz_corpus, "valid-exported-torch-0.onnx"))
    write_transformer_fuzz_seeds(fuzz_corpus)
    write_qdq_models(out)
    write_qdq_fuzz_seed(os.path.join(fuzz_corpus, "valid-exported-torch-0.onnx"),
                        os.path.join(fuzz_corpus, "valid-exported-torch-qdq-0.onnx"))


if __name__ == "__main__":
    main()
