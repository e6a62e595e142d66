"""The PyTorch 2.x twin of examples/char_lm.cc: the same character-level causal transformer,
loaded with the weights char_lm wrote (--save_initial), trained on the same batches (the same
splitmix64 recipe) with torch.optim.Adam, writing the loss of every step.

    /work/main/.venv-peers/bin/python examples/char_lm_torch_twin.py \
        --initial_weights examples/testdata/char_lm --out examples/testdata/char_lm/torch_losses.txt

Its defaults are char_lm's --smoke sizes (dim 32, 4 heads, 2 blocks, 32 characters, batch 8,
100 steps, learning rate 3e-3, data seed 42). Where Keras and PyTorch differ, the twin follows
Kiln's (Keras's) choices:
  - Dense kernels are [in, out] (Keras) against Linear's [out, in] weight: transposed on load.
  - MultiHeadAttention's query/key/value kernels [D, heads, head_dim] flatten to [D, heads *
    head_dim] (head-major, as Kiln's projection reshapes them), the output kernel [heads,
    head_dim, D] to [heads * head_dim, D]; attention is scaled by 1/sqrt(head_dim).
  - LayerNormalization's epsilon is Keras's 1e-3 (torch's default is 1e-5).
  - gelu is the exact (erf) form, Keras's default (approximate=False).
  - Adam is torch.optim.Adam with epsilon 1e-8; char_lm runs Kiln's Adam with
    pytorch_style=true and epsilon 1e-8 (--pytorch_adam), the same update.
  - No dropout on either side.
"""
import argparse
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

MASK64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def load_corpus(path):
    text = open(path, "rb").read()
    vocab = sorted(set(text))
    index = {b: i for i, b in enumerate(vocab)}
    return np.array([index[b] for b in text], dtype=np.int64), len(vocab)


def batches(ids, seq, batch, steps, seed):
    state = seed
    starts = len(ids) - seq
    for _ in range(steps):
        x = np.empty((batch, seq), np.int64)
        y = np.empty((batch, seq), np.int64)
        for r in range(batch):
            state, draw = splitmix64(state)
            s = draw % starts
            x[r] = ids[s:s + seq]
            y[r] = ids[s + 1:s + seq + 1]
        yield torch.from_numpy(x), torch.from_numpy(y)


class Block(torch.nn.Module):
    def __init__(self, dim, heads, eps):
        super().__init__()
        self.heads = heads
        self.attention_norm = torch.nn.LayerNorm(dim, eps=eps)
        self.query = torch.nn.Linear(dim, dim)
        self.key = torch.nn.Linear(dim, dim)
        self.value = torch.nn.Linear(dim, dim)
        self.attention_output = torch.nn.Linear(dim, dim)
        self.mlp_norm = torch.nn.LayerNorm(dim, eps=eps)
        self.mlp_up = torch.nn.Linear(dim, 4 * dim)
        self.mlp_down = torch.nn.Linear(4 * dim, dim)

    def attention(self, h):
        b, t, d = h.shape
        split = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.attention_output(out.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp_down(F.gelu(self.mlp_up(self.mlp_norm(x)), approximate="none"))


class CharLm(torch.nn.Module):
    def __init__(self, vocab, dim, heads, blocks, seq, eps=1e-3):
        super().__init__()
        self.token_embedding = torch.nn.Embedding(vocab, dim)
        self.position_embedding = torch.nn.Embedding(seq, dim)
        self.blocks = torch.nn.ModuleList(Block(dim, heads, eps) for _ in range(blocks))
        self.final_norm = torch.nn.LayerNorm(dim, eps=eps)
        self.logits = torch.nn.Linear(dim, vocab)

    def forward(self, x):
        pos = torch.arange(x.shape[1])
        h = self.token_embedding(x) + self.position_embedding(pos)[None]
        for block in self.blocks:
            h = block(h)
        return self.logits(self.final_norm(h))


def load_kiln_weights(model, folder):
    """Copies char_lm's --save_initial files into the torch modules, converting layouts."""
    weights = {}
    for line in open(os.path.join(folder, "manifest.txt")):
        file, name = line.split()
        weights[name] = torch.from_numpy(np.load(os.path.join(folder, file)))
    used = set()

    def take(name):
        used.add(name)
        return weights[name]

    def dense(linear, prefix, kernel_shape=None):
        kernel = take(prefix + "/kernel")
        kernel = kernel.reshape(-1, kernel.shape[-1]) if kernel_shape == "out" else kernel.reshape(kernel.shape[0], -1)
        linear.weight.data.copy_(kernel.t())
        linear.bias.data.copy_(take(prefix + "/bias").reshape(-1))

    def norm(layer, prefix):
        layer.weight.data.copy_(take(prefix + "/gamma"))
        layer.bias.data.copy_(take(prefix + "/beta"))

    with torch.no_grad():
        model.token_embedding.weight.copy_(take("token_embedding/embeddings"))
        model.position_embedding.weight.copy_(take("position_embedding/embeddings"))
        for i, block in enumerate(model.blocks):
            p = "block%d_" % i
            norm(block.attention_norm, p + "attention_norm")
            for part in ("query", "key", "value"):
                dense(getattr(block, part), p + "attention/" + part)  # [D, H, hd] -> [D, H * hd]
            dense(block.attention_output, p + "attention/attention_output", "out")  # [H, hd, D] -> [H * hd, D]
            norm(block.mlp_norm, p + "mlp_norm")
            dense(block.mlp_up, p + "mlp_up")
            dense(block.mlp_down, p + "mlp_down")
        norm(model.final_norm, "final_norm")
        dense(model.logits, "logits")
    left = set(weights) - used
    if left:
        raise SystemExit("weights the twin did not use: %s" % sorted(left))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--initial_weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--learning_rate", type=float, default=3e-3)
    ap.add_argument("--data_seed", type=int, default=42)
    args = ap.parse_args()

    torch.manual_seed(0)
    ids, vocab = load_corpus(args.corpus)
    model = CharLm(vocab, args.dim, args.heads, args.blocks, args.seq)
    load_kiln_weights(model, args.initial_weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    losses = []
    for step, (x, y) in enumerate(batches(ids, args.seq, args.batch, args.steps, args.data_seed)):
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 20 == 0 or step + 1 == args.steps:
            print("step %d: loss %.4f" % (step + 1, losses[-1]))
    with open(args.out, "w") as f:
        f.write("".join("%.9g\n" % l for l in losses))
    print("torch %s: wrote %d losses to %s" % (torch.__version__, len(losses), args.out))


if __name__ == "__main__":
    main()
