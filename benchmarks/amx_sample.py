"""The IPEX "AMX BF16 training" sample as a Kiln benchmark.

Intel's sample trains ResNet-50 on CIFAR-10 upsampled to 224x224 three times (FP32; BF16 with
oneDNN capped at AVX512-BF16; BF16 with AMX) and charts the training times and the speed-up
over FP32. Here each configuration is one run of amx_sample_bench in its own process (oneDNN
takes an ISA cap only before its first kernel), on synthetic CIFAR-10-shaped images, for a fixed
number of steps after warm-up. A configuration the CPU cannot run is reported as unavailable,
never measured under another ISA.

Run: bazel run //benchmarks:amx_sample -- [--size 224] [--batch 16] [--steps 4] [--warmup 1]
     [--optimizer sgd|adam] [--reps 1] [--out DIR]
The sample itself uses --batch 128 and a whole epoch (--steps 390).
"""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys

from bench_machine import cpu_info, flag_summary, kiln_thread_env

HERE = os.path.dirname(os.path.abspath(__file__))

# (key, label, what oneDNN may use)
CONFIGS = [
    ("fp32", "FP32", "uncapped"),
    ("bf16", "BF16 (AVX512-BF16)", "capped at avx512_core_bf16"),
    ("amx", "BF16 with AMX", "uncapped (AMX)"),
]


def find(candidates):
    for p in candidates:
        if os.path.exists(p):
            return p
    sys.exit("amx_sample: cannot find any of " + ", ".join(candidates))


def thread_env(bench):
    """Kiln's best-known OpenMP settings, fixed once so every configuration runs under them."""
    env, printed = kiln_thread_env(bench)
    return env, printed.splitlines()[-1]


def cpu_description():
    model, flags = cpu_info()
    return model, flag_summary(flags, [("AVX512-BF16", "avx512_bf16"), ("AMX-BF16", "amx_bf16"), ("AMX-TILE", "amx_tile"),
                                       ("AVX512-VNNI", "avx512_vnni"), ("AVX512F", "avx512f")])


def run_config(bench, key, a, env):
    cmd = [bench, "--config", key, "--size", str(a.size), "--batch", str(a.batch), "--steps", str(a.steps),
           "--warmup", str(a.warmup), "--optimizer", a.optimizer]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("amx_sample: %s failed:\n%s%s" % (" ".join(cmd), out.stdout, out.stderr))
    fields = dict(re.findall(r"(\w+)=(\S.*?)(?= \w+=|$)", out.stdout, re.M))
    if "unavailable" in fields:
        return {"unavailable": fields["unavailable"]}
    if "train_seconds" not in fields:
        sys.exit("amx_sample: no train_seconds in the output of %s:\n%s" % (" ".join(cmd), out.stdout))
    return fields


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224, help="image side after upsampling (the sample: 224)")
    ap.add_argument("--batch", type=int, default=16, help="the sample: 128")
    ap.add_argument("--steps", type=int, default=4, help="timed steps (the sample: one epoch, 390)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (primitive creation)")
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="the sample: SGD(0.001, 0.9)")
    ap.add_argument("--reps", type=int, default=1, help="runs per configuration; the median time is shown")
    ap.add_argument("--note", default="", help="conditions to record in the table (e.g. other jobs running)")
    ap.add_argument("--out", default=os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".") + "/benchmarks/results")
    a = ap.parse_args()
    bench = find([os.path.join(HERE, "amx_sample_bench"), "benchmarks/amx_sample_bench"])
    env, isa_line = thread_env(bench)
    threads = env.get("OMP_NUM_THREADS", "?")
    model, flags = cpu_description()
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    settings = "ResNet-50 (Keras v1, 10 classes), synthetic CIFAR-10 32x32 upsampled to %dx%d, batch %d, %d timed steps after %d warm-up, %s, %d run(s) each" % (
        a.size, a.size, a.batch, a.steps, a.warmup, a.optimizer.upper() if a.optimizer == "sgd" else "Adam", a.reps)
    print("%s; %s\n%s\nthreads %s; %s" % (model, flags, isa_line, threads, settings), flush=True)

    # Repetitions alternate the order, so a neighbour's load drifting over the run does not
    # always fall on the same configuration.
    load_start = os.getloadavg()[0]
    runs, unavailable = {k: [] for k, _, _ in CONFIGS}, {}
    for rep in range(a.reps):
        order = CONFIGS if rep % 2 == 0 else CONFIGS[::-1]
        for key, label, _ in order:
            if key in unavailable:
                continue
            r = run_config(bench, key, a, env)
            if "unavailable" in r:
                unavailable[key] = r["unavailable"]
                print("%-20s unavailable: %s" % (label, r["unavailable"]), flush=True)
                continue
            runs[key].append(r)
            print("%-20s %8.2f s  (%s)" % (label, float(r["train_seconds"]), r["conv_impls"]), flush=True)
    results = {}
    for key, _, _ in CONFIGS:
        if key in unavailable:
            results[key] = {"unavailable": unavailable[key]}
            continue
        secs = statistics.median(float(r["train_seconds"]) for r in runs[key])
        results[key] = dict(runs[key][-1], seconds=secs, ips=a.steps * a.batch / secs)

    fp32 = results["fp32"].get("seconds")
    lines = ["| configuration | oneDNN ISA | training time (s) | images/s | speed-up over FP32 | loss first -> last | conv implementations (primitives) |",
             "|" + "---|" * 7]
    for key, label, cap in CONFIGS:
        r = results[key]
        if "unavailable" in r:
            lines.append("| %s | %s | unavailable: %s | | | | |" % (label, cap, r["unavailable"]))
            continue
        lines.append("| %s | %s; effective %s | %.2f | %.2f | %.2fx | %s -> %s | %s |" % (
            label, cap, r["effective_isa"], r["seconds"], r["ips"], fp32 / r["seconds"], r["loss_first"], r["loss_last"],
            r["conv_impls"].replace(",", ", ")))
    notes = []
    if "seconds" in results["bf16"] and "seconds" in results["amx"]:
        notes.append("BF16 with AMX is %.2fx faster than BF16 without AMX." % (results["bf16"]["seconds"] / results["amx"]["seconds"]))
    # Other processes on the machine change every figure; the load average says how busy it was.
    header = "CPU: %s (%s)\n\n%s; OpenMP threads: %s; date: %s\n\nSettings: %s.\n\nLoad average (1 min): %.1f at the start, %.1f at the end.%s\n" % (
        model, flags, isa_line, threads, date, settings, load_start, os.getloadavg()[0],
        " " + a.note if a.note else "")
    table = "\n".join(lines)
    print(table)
    for n in notes:
        print(n)

    os.makedirs(a.out, exist_ok=True)
    md = os.path.join(a.out, "amx_sample.md")
    with open(md, "w") as f:
        f.write("# The IPEX AMX BF16 training sample, in Kiln\n\n%s\n%s\n" % (header, table))
        f.write("".join("\n%s\n" % n for n in notes))
        f.write("\nTraining time covers forward, backward and the optimizer step of the timed steps; the data "
                "(at most 4 distinct batches, upsampled and normalized beforehand, cycling) is not in it, unlike the "
                "sample's DataLoader.\n")
    png = os.path.join(a.out, "amx_sample.png")
    if draw(results, png, "%s (%s), %s threads, %s" % (model, flags, threads, date), a):
        print("wrote %s and %s" % (png, md))
    else:
        print("matplotlib missing (python3-matplotlib): wrote %s only" % md)
    return 0


def draw(results, png, title, a):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = [label for _, label, _ in CONFIGS]
    secs = [results[k].get("seconds") for k, _, _ in CONFIGS]
    fp32 = secs[0]
    # The sample's two charts side by side: training time, and speed-up over FP32.
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, values, ylabel, fmt in ((left, secs, "training time (s)", "%.1f s"),
                                    (right, [fp32 / s if s else None for s in secs], "speed-up over FP32", "%.2fx")):
        for i, v in enumerate(values):
            if v is None:
                ax.text(i, 0.02, "unavailable\non this CPU", transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8, color="gray")
                continue
            bar = ax.bar(i, v, 0.6, color=["#7f7f7f", "#1f77b4", "#2ca02c"][i])
            ax.bar_label(bar, fmt=fmt, fontsize=8)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, max(v for v in values if v is not None) * 1.2)
    right.axhline(1.0, color="gray", linewidth=0.8)
    left.set_title("ResNet-50 training time, %d steps of batch %d at %dx%d" % (a.steps, a.batch, a.size, a.size), fontsize=9)
    right.set_title("Speed-up over FP32", fontsize=9)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    return True


if __name__ == "__main__":
    sys.exit(main())
