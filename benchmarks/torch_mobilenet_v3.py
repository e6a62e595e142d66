"""Keras's MobileNetV3Small (keras/src/applications/mobilenet_v3.py, weights=None) in PyTorch,
for the training benchmark's PyTorch side: the same blocks, widths, kernel sizes, activations
(ReLU, hard-swish, hard-sigmoid in squeeze-excite), BatchNorm epsilon 1e-3 and momentum 0.999,
the Rescaling(1/127.5, -1) Keras builds in, the 1x1-conv head with Dropout(0.2), and logits out.

One difference, for PyTorch's sake: where Keras zero-pads before a stride-2 'valid' conv
(correct_pad) or pads 'same' asymmetrically, this twin lets the conv pad k//2 on every side,
as a PyTorch user would (torchvision does). On even input sizes the output shapes and the work
are the same; the extra pad layer Kiln folds into its conv would cost PyTorch a copy.
python3 torch_mobilenet_v3.py checks the trainable parameter count against Keras's.
"""
import torch
import torch.nn as nn

# The benchmark's input (H, W, C): kiln's benchmarks/workloads.cc uses the same.
MOBILENET_INPUT = (128, 128, 3)


def _depth(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.001)  # Keras momentum 0.999 = PyTorch 0.001


class SqueezeExcite(nn.Module):
    def __init__(self, filters, se_ratio):
        super().__init__()
        self.reduce = nn.Conv2d(filters, _depth(filters * se_ratio), 1)
        self.expand = nn.Conv2d(_depth(filters * se_ratio), filters, 1)

    def forward(self, x):
        s = torch.mean(x, dim=(2, 3), keepdim=True)
        s = nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(s))))
        return x * s


class InvertedResidual(nn.Module):
    def __init__(self, infilters, expansion, filters, kernel, stride, se_ratio, activation, block_id):
        super().__init__()
        act = nn.Hardswish if activation == "hard_swish" else nn.ReLU
        expanded = _depth(infilters * expansion)
        layers = []
        if block_id:
            layers += [nn.Conv2d(infilters, expanded, 1, bias=False), _bn(expanded), act()]
        else:
            expanded = infilters
        layers += [nn.Conv2d(expanded, expanded, kernel, stride, kernel // 2, groups=expanded, bias=False),
                   _bn(expanded), act()]
        if se_ratio:
            layers.append(SqueezeExcite(expanded, se_ratio))
        layers += [nn.Conv2d(expanded, filters, 1, bias=False), _bn(filters)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and infilters == filters

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV3Small(nn.Module):
    def __init__(self, in_channels=3, classes=1000, alpha=1.0, minimalistic=False, dropout_rate=0.2):
        super().__init__()
        kernel, activation, se = (3, "relu", None) if minimalistic else (5, "hard_swish", 0.25)
        act = nn.Hardswish if activation == "hard_swish" else nn.ReLU
        depth = lambda d: _depth(d * alpha)
        stem = [nn.Conv2d(in_channels, 16, 3, 2, 1, bias=False), _bn(16), act()]
        # (expansion, filters, kernel, stride, se_ratio, activation), as Keras's stack_fn
        spec = [(1, depth(16), 3, 2, se, "relu"), (72.0 / 16, depth(24), 3, 2, None, "relu"),
                (88.0 / 24, depth(24), 3, 1, None, "relu"), (4, depth(40), kernel, 2, se, activation),
                (6, depth(40), kernel, 1, se, activation), (6, depth(40), kernel, 1, se, activation),
                (3, depth(48), kernel, 1, se, activation), (3, depth(48), kernel, 1, se, activation),
                (6, depth(96), kernel, 2, se, activation), (6, depth(96), kernel, 1, se, activation),
                (6, depth(96), kernel, 1, se, activation)]
        blocks, c = [], 16
        for i, (e, f, k, s, r, a) in enumerate(spec):
            blocks.append(InvertedResidual(c, e, f, k, s, r, a, i))
            c = f
        last_conv = _depth(c * 6)
        last_point = _depth(1024 * alpha) if alpha > 1.0 else 1024
        self.features = nn.Sequential(*stem, *blocks, nn.Conv2d(c, last_conv, 1, bias=False), _bn(last_conv), act())
        self.head = nn.Sequential(nn.Conv2d(last_conv, last_point, 1), act(), nn.Dropout(dropout_rate),
                                  nn.Conv2d(last_point, classes, 1), nn.Flatten())

    def forward(self, x):
        x = self.features(x * (1.0 / 127.5) - 1.0)  # Keras's Rescaling(1/127.5, offset=-1)
        return self.head(torch.mean(x, dim=(2, 3), keepdim=True))


def mobilenet_v3_small(in_channels=3, classes=1000, **kwargs):
    return MobileNetV3Small(in_channels, classes, **kwargs)


if __name__ == "__main__":
    # Keras 3.15.1 trainable counts (tests/keras_param_counts.inc).
    for kwargs, want in (({}, 2542856), ({"alpha": 0.75}, 2041872), ({"minimalistic": True}, 2044736)):
        n = sum(p.numel() for p in mobilenet_v3_small(3, 1000, **kwargs).parameters())
        print(kwargs, n, "Keras", want, "ok" if n == want else "MISMATCH")
    n = sum(p.numel() for p in mobilenet_v3_small(1, 10).parameters())
    print("32x32x1, 10 classes", n, "Keras 1527818", "ok" if n == 1527818 else "MISMATCH")
