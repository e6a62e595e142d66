"""Kiln vs PyTorch training throughput, measured side by side in one run.

For every workload (model, batch, dtype) the Kiln binary and the PyTorch script run alternately,
REPS times each (which goes first alternates too), with the same OpenMP settings; the table
shows the median images/s of each side, their ratio, and each framework's BF16 speed-up over
its own FP32, and Kiln's framework overhead (the share of a step outside oneDNN primitives and
Kiln's own kernels, from kiln_train_bench's profiled pass). The header names the CPU model,
its AVX-512/VNNI/BF16/AMX flags, the threads and the date. PyTorch's OpenBLAS is pointed at the
best kernel set the CPU supports when it does not recognise the CPU (printed). It checks the
targets of issue 11 and draws a PNG bar chart of throughput relative to PyTorch FP32 (= 1.0) per
model, like the IPEX AMX sample's chart.

Run: bazel run //benchmarks:compare -- [--reps 3] [--quick] [--models mlp,cnn] [--kiln_optimize]
                                       [--kiln_conv_algorithm direct|winograd|fastest] [--out DIR]
                                       [--torch_python PYTHON]
Results go to compare.md / compare.png, or compare_<options>.md / .png when Kiln runs with
non-default options (kiln::optimize, kiln::set_conv_algorithm) or a subset of --models.
--torch_python picks the interpreter (and so the PyTorch) of the PyTorch side; the default is
Debian's python3-torch 1.13. mobilenet_v3_small (issue 21) is measured against a PyTorch 2.x
from PyPI, e.g. --models mobilenet_v3_small --torch_python /work/main/.venv-peers/bin/python.
"""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys

from bench_machine import cpu_info, kiln_thread_env

HERE = os.path.dirname(os.path.abspath(__file__))

# (model, batch, steps per run, is a conv net)
WORKLOADS = [
    ("mlp", 32, 3000, False),
    ("cnn", 32, 400, True),
    ("cnn", 128, 120, True),
    ("resnet18", 32, 12, True),
    ("mobilenet_v3_small", 32, 16, True),
    ("mobilenet_v3_small", 128, 5, True),
]


def find(path_candidates):
    for p in path_candidates:
        if os.path.exists(p):
            return p
    sys.exit("compare: cannot find any of " + ", ".join(path_candidates))


def run(cmd, env):
    """images/s, and for Kiln the profiled pass's (overhead %, outside-oneDNN %) or None."""
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("compare: %s failed:\n%s%s" % (" ".join(cmd), out.stdout, out.stderr))
    m = re.search(r"images_per_sec=([0-9.]+)", out.stdout)
    if not m:
        sys.exit("compare: no images_per_sec in output of %s:\n%s" % (" ".join(cmd), out.stdout))
    p = re.search(r"overhead_pct=([0-9.-]+) non_primitive_pct=([0-9.-]+)", out.stdout)
    return float(m.group(1)), (float(p.group(1)), float(p.group(2))) if p else None


def thread_env(kiln_bin):
    """The OpenMP settings kiln::cpu::best_known_config() picks, used for both frameworks."""
    return kiln_thread_env(kiln_bin)[0]


def openblas_core(env):
    # The library PyTorch loads (libblas.so.3 -> Debian's alternative), asked in a fresh process
    # because OpenBLAS picks its kernels once, when it loads.
    code = ("import ctypes;l=ctypes.CDLL('libopenblas.so.0');"
            "l.openblas_get_corename.restype=ctypes.c_char_p;print(l.openblas_get_corename().decode())")
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"



def best_openblas_core(flags):
    """The best OpenBLAS 0.3.21 kernel set these CPU flags run."""
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def fair_openblas(torch_env, flags):
    """Points OpenBLAS at the best kernels the CPU supports when it does not pick them itself.

    OpenBLAS 0.3.21 does not recognise newer CPUs (on a Sapphire Rapids-class Xeon under KVM
    it picked "Prescott", plain SSE3), and Debian may pin OPENBLAS_CORETYPE to Haswell; either
    would slow PyTorch's FP32 Linear for nothing. Returns a line saying what was chosen."""
    torch_env.pop("OPENBLAS_CORETYPE", None)
    torch_env.pop("OPENBLAS_L2_SIZE", None)
    detected = openblas_core(torch_env)
    best = best_openblas_core(flags)
    if best is None or detected.lower() == best.lower():
        return "OpenBLAS kernel %s (detected; OPENBLAS_CORETYPE unset)" % detected
    torch_env["OPENBLAS_CORETYPE"] = best
    used = openblas_core(torch_env)
    return "OpenBLAS detected %s; OPENBLAS_CORETYPE=%s (best this CPU supports), kernel now %s" % (detected, best, used)


def machine_header(threads):
    model, flags = cpu_info()
    yn = lambda f: "yes" if f in flags else "no"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "CPU: %s; AVX-512: %s, AVX512-VNNI: %s, AVX512-BF16: %s, AMX: %s; threads: %s; date: %s" % (
        model, yn("avx512f"), yn("avx512_vnni"), yn("avx512_bf16"), yn("amx_tile"), threads, date)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer steps, for a smoke run")
    ap.add_argument("--models", default="",
                    help="comma-separated subset of mlp,cnn,resnet18,mobilenet_v3_small (default: all)")
    ap.add_argument("--torch_python", default="/usr/bin/python3", help="the interpreter that runs PyTorch's side")
    ap.add_argument("--kiln_optimize", action="store_true", help="run Kiln's side after kiln::optimize (packed conv kernels)")
    ap.add_argument("--kiln_conv_algorithm", default="direct", choices=["direct", "winograd", "fastest"],
                    help="kiln::set_conv_algorithm for Kiln's side (PyTorch has no such choice on CPU)")
    ap.add_argument("--out", default=os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".") + "/benchmarks/results")
    a = ap.parse_args()
    global WORKLOADS
    if a.models:
        wanted = set(a.models.split(","))
        WORKLOADS = [w for w in WORKLOADS if w[0] in wanted]
        if not WORKLOADS:
            sys.exit("compare: --models %s names none of mlp, cnn, resnet18, mobilenet_v3_small" % a.models)
    kiln_bin = find([os.path.join(HERE, "kiln_train_bench"), "benchmarks/kiln_train_bench"])
    torch_py = find([os.path.join(HERE, "torch_train_bench.py"), "benchmarks/torch_train_bench.py"])
    env = thread_env(kiln_bin)
    threads = env.get("OMP_NUM_THREADS", "?")
    torch_env = dict(env)
    blas = fair_openblas(torch_env, cpu_info()[1])
    # Same thread count, but PyTorch keeps its own default of unbound threads: measured on the
    # dev machine, binding made its ResNet-18 step about 6% slower and did not change Kiln's.
    torch_env.pop("OMP_PROC_BIND", None)
    # Kiln's spin count is Kiln's choice; PyTorch keeps libgomp's default spin, its own default.
    torch_env.pop("GOMP_SPINCOUNT", None)
    torch_env.pop("OMP_PLACES", None)
    probe = subprocess.run([a.torch_python, "-c", "import torch; print(torch.__version__)"], env=torch_env,
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit("compare: %s cannot import torch:\n%s" % (a.torch_python, probe.stderr))
    torch_version = probe.stdout.strip()

    header = machine_header(threads)
    setup = "threads: %s for both (Kiln: OMP_PROC_BIND=%s OMP_PLACES=%s; PyTorch: unbound); PyTorch %s (%s); %s" % (
        threads, env.get("OMP_PROC_BIND"), env.get("OMP_PLACES"), torch_version, a.torch_python, blas)
    if a.kiln_optimize:
        setup += " Kiln's side runs after kiln::optimize (conv kernels packed)."
    if a.kiln_conv_algorithm != "direct":
        setup += " Kiln's side runs with set_conv_algorithm(%s) (oneDNN Winograd convolutions%s)." % (
            a.kiln_conv_algorithm, " where they measure faster" if a.kiln_conv_algorithm == "fastest" else "")
    options = (["optimize"] if a.kiln_optimize else []) + (
        [a.kiln_conv_algorithm] if a.kiln_conv_algorithm != "direct" else [])
    if a.models:
        options += sorted(set(m for m, _, _, _ in WORKLOADS))
    stem = "compare" + "".join("_" + o for o in options)
    print(header)
    print(setup, flush=True)
    results, overheads = {}, {}
    for rep in range(a.reps):
        for model, batch, steps, _ in WORKLOADS:
            if a.quick:
                steps = max(2, steps // 10)
            for dtype in ("f32", "bf16"):
                args = ["--model", model, "--dtype", dtype, "--batch", str(batch), "--steps", str(steps), "--warmup", "3"]
                kiln_args = args + (["--optimize", "1"] if a.kiln_optimize else []) + (
                    ["--conv_algorithm", a.kiln_conv_algorithm] if a.kiln_conv_algorithm != "direct" else [])
                kiln = lambda: run([kiln_bin] + kiln_args, env)
                torch_run = lambda: run([a.torch_python, torch_py] + args + ["--threads", threads], torch_env)
                order = [("kiln", kiln), ("torch", torch_run)]
                if rep % 2:
                    order.reverse()
                for name, fn in order:
                    ips, profile = fn()
                    results.setdefault((model, batch, dtype, name), []).append(ips)
                    if profile:
                        overheads.setdefault((model, batch, dtype), []).append(profile)
        print("repetition %d/%d done" % (rep + 1, a.reps), flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    rows, failures = [], []
    columns = ("| model | batch | dtype | Kiln img/s | PyTorch img/s | Kiln / PyTorch | Kiln BF16 / own FP32 "
               "| PyTorch BF16 / own FP32 | Kiln framework overhead % | Kiln outside oneDNN % |")
    lines = [columns, "|" + "---|" * 10]
    for model, batch, _, conv in WORKLOADS:
        for dtype in ("f32", "bf16"):
            k, t = med[(model, batch, dtype, "kiln")], med[(model, batch, dtype, "torch")]
            ratio = k / t
            kb = med[(model, batch, "bf16", "kiln")] / med[(model, batch, "f32", "kiln")]
            tb = med[(model, batch, "bf16", "torch")] / med[(model, batch, "f32", "torch")]
            prof = overheads.get((model, batch, dtype), [])
            ovh = "%.1f" % statistics.median(p[0] for p in prof) if prof else "n/a"
            outside = "%.1f" % statistics.median(p[1] for p in prof) if prof else "n/a"
            lines.append("| %s | %d | %s | %.0f | %.0f | %.2fx | %s | %s | %s | %s |" % (
                model, batch, dtype, k, t, ratio, "%.2fx" % kb if dtype == "bf16" else "",
                "%.2fx" % tb if dtype == "bf16" else "", ovh, outside))
            # Issue 11's targets: MLP b32 3x, CNN b32 2.5x, ResNet-18 1.3x (in bf16 only where bf16
            # beats f32 on this CPU), ahead everywhere else; framework overhead under 15% (MLP
            # b32) and 5% (ResNet-18).
            # Issue 21's: MobileNetV3Small 1.5x at batch 32 and 128.
            need = {("mlp", 32): 3.0, ("cnn", 32): 2.5, ("resnet18", 32): 1.3, ("mobilenet_v3_small", 32): 1.5,
                    ("mobilenet_v3_small", 128): 1.5}.get((model, batch), 1.0)
            if dtype == "bf16" and kb <= 1.0:
                need = 1.0
            if ratio < need:
                failures.append("%s b%d %s: Kiln/PyTorch %.2fx < %.1fx" % (model, batch, dtype, ratio, need))
            limit = {("mlp", 32): 15.0, ("resnet18", 32): 5.0}.get((model, batch))
            if limit and dtype == "f32" and prof and statistics.median(p[0] for p in prof) >= limit:
                failures.append("%s b%d %s: framework overhead %s%% >= %.0f%%" % (model, batch, dtype, ovh, limit))
            rows.append((model, batch, dtype, k, t))
    table = "\n".join(lines)
    legend = ("Kiln framework overhead %: the share of a training step spent outside oneDNN primitives and Kiln's own "
              "kernels, from a second pass with kiln::onednn::profiler on; Kiln outside oneDNN %: the share outside "
              "oneDNN primitives alone (Kiln's own kernels, such as the optimizer update, counted as overhead).")
    print(table)
    print(legend)
    print("targets: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, stem + ".md"), "w") as f:
        f.write("%s\n\n%s; %d repetitions, medians\n\n%s\n\n%s\n\ntargets: %s\n" % (
            header, setup, a.reps, table, legend, "all met" if not failures else "MISSED: " + "; ".join(failures)))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (python3-matplotlib): no chart written")
        return 0
    groups = ["%s b%d" % (m, b) for m, b, _, _ in WORKLOADS]
    series = [("PyTorch FP32", "torch", "f32"), ("PyTorch BF16", "torch", "bf16"),
              ("Kiln FP32", "kiln", "f32"), ("Kiln BF16", "kiln", "bf16")]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.2
    for i, (label, who, dtype) in enumerate(series):
        vals = [med[(m, b, dtype, who)] / med[(m, b, "f32", "torch")] for m, b, _, _ in WORKLOADS]
        bars = ax.bar([g + (i - 1.5) * width for g in range(len(groups))], vals, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_ylabel("training throughput relative to PyTorch FP32")
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_title("Training throughput, %s threads (median of %d runs)\n%s" % (threads, a.reps, header), fontsize=8)
    ax.legend()
    fig.tight_layout()
    png = os.path.join(a.out, stem + ".png")
    fig.savefig(png, dpi=120)
    print("wrote %s and %s" % (png, os.path.join(a.out, stem + ".md")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
