"""The sequence workloads of the training benchmark in PyTorch: the ViT of
examples/vit_fashion_mnist.cc (kiln::nn::applications::vision_transformer, default options),
the LSTM classifier of benchmarks/workloads.cc and the character-level transformer LM of
examples/char_lm.cc, each with Kiln's trainable parameter count.

ViT: a 4x4 stride-4 Conv2d patch embedding (49 tokens of 64), a learned position embedding,
4 pre-norm nn.TransformerEncoderLayer blocks (4 heads, so key_dim 16; exact-gelu MLP of 128; no
dropout; PyTorch runs their attention through scaled_dot_product_attention), a final LayerNorm,
the mean over tokens and a Linear head. LayerNorm epsilon 1e-6, as VisionTransformerOptions.
The input is [N, 1, 28, 28] pixels in [0, 255], rescaled by the caller (as Kiln's Rescaling).

LSTM: nn.LSTM(28, 128, batch_first=True) over the 28 rows of an image, its last hidden state
into Linear(128, 10). PyTorch's LSTM has two biases (input and hidden) where Keras's has one;
the hidden one is held at zero and frozen, so both sides train the same 80,384 LSTM weights.

LM: CharLm of examples/char_lm_torch_twin.py (the twin whose losses examples_test compares with
char_lm's step by step) at char_lm's default sizes: 76 characters (the GPL-3 text's), a context
of 64, dim 128, 4 heads, 4 blocks, MLP 512; 821,068 trainable parameters on both sides.
python3 torch_sequence_models.py prints the models' trainable parameter counts.
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from char_lm_torch_twin import CharLm  # noqa: E402

VIT_TOKENS, VIT_DIM, VIT_DEPTH, VIT_HEADS, VIT_MLP, VIT_PATCH = 49, 64, 4, 4, 128, 4
VIT_LAYER_NORM_EPSILON = 1e-6
LSTM_UNITS = 128
LM_VOCAB, LM_CONTEXT, LM_DIM, LM_HEADS, LM_BLOCKS = 76, 64, 128, 4, 4


class VisionTransformer(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.patch_embedding = nn.Conv2d(1, VIT_DIM, VIT_PATCH, stride=VIT_PATCH)
        self.position_embedding = nn.Parameter(torch.empty(VIT_TOKENS, VIT_DIM))
        nn.init.xavier_uniform_(self.position_embedding)  # Keras's glorot_uniform
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model=VIT_DIM, nhead=VIT_HEADS, dim_feedforward=VIT_MLP, dropout=0.0,
                                       activation="gelu", layer_norm_eps=VIT_LAYER_NORM_EPSILON, batch_first=True,
                                       norm_first=True)
            for _ in range(VIT_DEPTH))
        self.norm = nn.LayerNorm(VIT_DIM, eps=VIT_LAYER_NORM_EPSILON)
        self.head = nn.Linear(VIT_DIM, classes)

    def forward(self, x):
        # [N, 64, 7, 7] -> [N, 49, 64]: under channels_last this is a view of the conv's output,
        # the token order (row-major patches) Kiln's Reshape gives.
        x = self.patch_embedding(x).flatten(2).transpose(1, 2)
        x = x + self.position_embedding
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))


class LstmClassifier(nn.Module):
    def __init__(self, features=28, classes=10):
        super().__init__()
        self.lstm = nn.LSTM(features, LSTM_UNITS, batch_first=True)
        with torch.no_grad():
            self.lstm.bias_hh_l0.zero_()
        self.lstm.bias_hh_l0.requires_grad_(False)
        self.head = nn.Linear(LSTM_UNITS, classes)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


def char_lm():
    """[N, 64] character ids -> [N, 64, 76] logits; the positions are generated inside."""
    return CharLm(LM_VOCAB, LM_DIM, LM_HEADS, LM_BLOCKS, LM_CONTEXT)


def trainable_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    print("vit trainable parameters: %d" % trainable_parameters(VisionTransformer()))
    print("lstm trainable parameters: %d" % trainable_parameters(LstmClassifier()))
    print("lm trainable parameters: %d" % trainable_parameters(char_lm()))
