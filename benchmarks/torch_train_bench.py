"""PyTorch twin of kiln_train_bench: the same models, batch, loss and optimizer, one Adam step
per iteration on a fixed random batch. Prints "images_per_sec=<value>" (and, under --mode compile,
"compile_s=<value>": the first step's time beyond a steady step, excluded from images_per_sec).

  .venv-peers/bin/python torch_train_bench.py --model cnn --dtype bf16 --batch 32 --steps 50 --warmup 5
                                              --threads 2 --mode eager|ipex|compile

Conv nets run channels_last (NHWC, as Kiln); --dtype bf16 uses torch.autocast(bfloat16), the
PyTorch counterpart of Keras' mixed_bfloat16 policy (fp32 master weights). Each mode is that
peer's fastest documented training setup:
  eager:   torch.optim.Adam(fused=True) (ATen's fused CPU Adam, one kernel for all parameters);
  ipex:    intel_extension_for_pytorch.optimize(model, optimizer, dtype) (its fused Adam, weight
           prepacking, bf16 master-weight split under --dtype bf16);
  compile: torch.compile(model) (inductor, forward and backward) with the fused Adam.
"""
import argparse
import time

import torch
import torch.nn as nn


def keras_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 3 * 3, 128), nn.ReLU(), nn.Linear(128, 10))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18, as kiln::nn::applications::resnet18."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, cin = [], 64
        for i, cout in enumerate([64, 128, 256, 512]):
            layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(512, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "resnet18", "mobilenet_v3_small", "vit", "lstm", "lm"])
    p.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mode", default="eager", choices=["eager", "ipex", "compile"])
    a = p.parse_args()
    # As kiln_train_bench: one fixed batch drives the loss to ~0 and Adam's moments into the
    # denormal range within a few hundred steps; flush them (before any thread starts, so the
    # OpenMP workers inherit the setting).
    torch.set_flush_denormal(True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    if a.model == "resnet18":
        model, x = ResNet18(), torch.rand(a.batch, 3, 32, 32)
    elif a.model == "mobilenet_v3_small":
        # Keras's MobileNetV3Small (benchmarks/torch_mobilenet_v3.py); it rescales [0, 255] pixels
        # itself (Keras's include_preprocessing).
        from torch_mobilenet_v3 import MOBILENET_INPUT, mobilenet_v3_small
        h, w, c = MOBILENET_INPUT
        model, x = mobilenet_v3_small(in_channels=c, classes=10), torch.rand(a.batch, c, h, w) * 255
    elif a.model == "vit":
        # examples/vit_fashion_mnist.cc's ViT (benchmarks/torch_sequence_models.py).
        from torch_sequence_models import VisionTransformer
        model, x = VisionTransformer(), torch.rand(a.batch, 1, 28, 28) * 255
    elif a.model == "lstm":
        # LSTM(128) over the 28 rows of a 28x28 image, then Linear(128, 10).
        from torch_sequence_models import LstmClassifier
        model, x = LstmClassifier(), torch.rand(a.batch, 28, 28)
    elif a.model == "lm":
        # examples/char_lm.cc's transformer (benchmarks/torch_sequence_models.py): random character
        # ids and a random next-character label per position, as kiln_train_bench's.
        from torch_sequence_models import LM_CONTEXT, LM_VOCAB, char_lm
        model, x = char_lm(), torch.randint(0, LM_VOCAB, (a.batch, LM_CONTEXT))
    else:
        model = mlp() if a.model == "mlp" else keras_cnn()
        x = torch.rand(a.batch, 1, 28, 28) * 255
    scale = 1.0 if a.model in ("resnet18", "mobilenet_v3_small", "lstm") else 1.0 / 255
    if a.model == "lm":
        scale = None  # character ids, not pixels
    conv = a.model not in ("mlp", "lstm", "lm")
    if conv:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(a.batch) % 10
    if a.model == "lm":
        y = torch.randint(0, LM_VOCAB, (a.batch * LM_CONTEXT,))  # one label per position
    model.train()
    # The LSTM twin holds PyTorch's second bias frozen (Keras's LSTM has one).
    trainable = [p for p in model.parameters() if p.requires_grad]
    if a.mode == "ipex":
        import intel_extension_for_pytorch as ipex
        opt = torch.optim.Adam(trainable, lr=1e-3)
        model, opt = ipex.optimize(model, optimizer=opt, dtype=torch.bfloat16 if a.dtype == "bf16" else torch.float32)
    else:
        opt = torch.optim.Adam(trainable, lr=1e-3, fused=True)
    if a.mode == "compile":
        model = torch.compile(model)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            out = model(x if scale is None else x * scale)
        loss = loss_fn(out.float().reshape(-1, out.shape[-1]), y)
        loss.backward()
        opt.step()
        return loss

    first = time.perf_counter()
    step()
    first = time.perf_counter() - first
    for _ in range(a.warmup - 1):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    secs = time.perf_counter() - start
    extra = " compile_s=%.2f" % max(0.0, first - secs / a.steps) if a.mode == "compile" else ""
    print("images_per_sec=%.3f loss=%.4f torch=%s%s" % (a.steps * a.batch / secs, loss.item(), torch.__version__, extra))


if __name__ == "__main__":
    main()
