"""The training workloads //benchmarks:compare runs, one row each per dtype.

A workload names a model every twin knows by the same name: kiln_train_bench
(benchmarks/workloads.cc), torch_train_bench.py (PyTorch eager, IPEX, torch.compile) and
libtorch_train_bench.cc. Adding a workload (MobileNetV3, ViT, LSTM, ...) is one line here plus
the model in each twin; a twin that does not know the model fails with its own message, and
compare shows "n/a" in that peer's cell and prints the message, instead of stopping.
"""
import collections

# model: the name every twin takes (--model); batch; steps: timed steps per run (before --quick,
# which divides them by 10), chosen so that one run takes about a second on 2 cores.
Workload = collections.namedtuple("Workload", "model batch steps")

WORKLOADS = [
    Workload("mlp", 32, 3000),
    Workload("cnn", 32, 400),
    Workload("cnn", 128, 120),
    Workload("resnet18", 32, 12),
    # Keras's MobileNetV3Small on 128x128x3 (issue 21; target 1.5x in f32 and bf16).
    Workload("mobilenet_v3_small", 32, 16),
    Workload("mobilenet_v3_small", 128, 5),
    # The ViT of examples/vit_fashion_mnist.cc and an LSTM(128) classifier over the 28 rows of an
    # image (issues 22 and 25; twins in benchmarks/torch_sequence_models.py).
    Workload("vit", 32, 60),
    Workload("vit", 128, 10),
    Workload("lstm", 32, 400),
    Workload("lstm", 128, 100),
    # examples/char_lm.cc's causal transformer LM at its defaults (64 characters per window, dim
    # 128, 4 heads, 4 blocks; issue 22; twin: examples/char_lm_torch_twin.py's CharLm). Its
    # "images" are windows of 64 characters; batch 32 is the example's.
    Workload("lm", 8, 40),
    Workload("lm", 32, 8),
]
