"""Writes the foreign ONNX test models: torchvision nets exported by torch.onnx.export.

Runs in the peers venv (scripts/setup --peers pins torch 2.8.0, torchvision 0.23.0, onnx 1.23.2);
CI never runs it, it reads the checked-in outputs. For each model NAME it writes NAME.onnx, the
fixed input NAME.input.npy (float32 NCHW) and PyTorch's output NAME.output.npy (float32).
Usage: .venv-peers/bin/python tests/data/foreign_onnx/make_models.py [out_dir]
"""
import math
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
    write_transformer_models(out)
    fuzz_corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "corpus", "onnx")
    write_fuzz_seed(os.path.join(fuzz_corpus, "valid-exported-torch-0.onnx"))
    write_transformer_fuzz_seeds(fuzz_corpus)


if __name__ == "__main__":
    main()
