"""Kiln's Model::predict, Kiln's InferenceModel and ONNX Runtime on the same exported model,
side by side in one run (issue 8's benchmark).

For the MLP, the Keras CNN, ResNet-18 (32x32x3) and Keras's MobileNetV3Small (128x128x3): batch 1 (p50 and p99 latency) and batch
256 (throughput), with 2 threads for every engine. Engines alternate within each repetition
(the first one rotates), and the table shows medians over repetitions. It checks the targets:
  - InferenceModel fp32 at least 1.5x Model::predict;
  - InferenceModel fp32 at least 1.0x ONNX Runtime fp32 on every model and batch;
  - at batch 1, InferenceModel's p99 under 2x its p50.
INT8 rows (issue 9): Kiln int8 at least 2.5x Kiln fp32 on ResNet-18 at batch 32 and 2x on the
CNN at batch 256, and faster than ONNX Runtime int8 (the QDQ export) on every row. Issue 21 adds
ONNX Runtime's own int8: quantize_static (QDQ, per-channel) on the fp32 export, calibrated on
the same 256 images as Kiln's (ort_quantize_static.py, which needs the onnx package:
--quant_python names an interpreter that has it; the default is the .venv's).
Writes benchmarks/results/inference.md and inference.png (inference_<models>.md with --models).

Run: bazel run //benchmarks:inference -- [--reps 3] [--seconds 2] [--quick] [--models cnn,mobilenet_v3_small]
                                         [--quant_python PYTHON]
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["mlp", "cnn", "resnet18", "mobilenet_v3_small"]
BATCHES = [1, 32, 256]
# MobileNetV3Small's InferenceModel and ONNX file keep the batch size they were traced with
# (64: its ZeroPadding2D layers trace as constants of the sample's batch; see inference_models.h).
MODEL_BATCHES = {"mobilenet_v3_small": [64]}
# (column, engine, dtype)
ENGINES = [("Model::predict", "predict", "f32"), ("Model()", "call", "f32"),
           ("InferenceModel", "inference", "f32"), ("ONNX Runtime", "ort", "f32"),
           ("InferenceModel bf16", "inference", "bf16"), ("InferenceModel int8", "int8", "f32"),
           ("ONNX Runtime int8", "ort_int8", "f32"), ("ORT quantize_static int8", "ort_static_int8", "f32")]


def find(cands):
    for p in cands:
        if os.path.exists(p):
            return p
    sys.exit("inference_compare: cannot find any of " + ", ".join(cands))


def venv_python():
    root = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
    py = os.path.join(root, ".venv", "bin", "python")
    if not os.path.exists(py):
        sys.exit("inference_compare: %s missing: run `bash scripts/setup` (it installs onnxruntime==1.31.1 there)" % py)
    return py


def parse(out, cmd):
    m = dict(re.findall(r"(\w+)=(\S+)", out))
    if "images_per_sec" not in m:
        sys.exit("inference_compare: no result from %s:\n%s" % (" ".join(cmd), out))
    return m


def run(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("inference_compare: %s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return parse(r.stdout, cmd)


def cpu_facts():
    model = "unknown"
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]
    have = [f for f in wanted if f in flags]
    missing = [f for f in wanted if f not in flags]
    return model, have, missing


def main():
    global MODELS
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="one repetition of 0.5 s: a smoke run")
    ap.add_argument("--out", default=os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".") + "/benchmarks/results")
    ap.add_argument("--models", default="", help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--quant_python", default="", help="interpreter with onnx + onnxruntime for quantize_static")
    a = ap.parse_args()
    if a.quick:
        a.reps, a.seconds = 1, 0.5
    stem = "inference"
    if a.models:
        wanted = a.models.split(",")
        unknown = [m for m in wanted if m not in MODELS]
        if unknown:
            sys.exit("inference_compare: unknown --models %s (known: %s)" % (",".join(unknown), ",".join(MODELS)))
        MODELS = wanted
        stem += "_" + "_".join(wanted)
    kiln = find([os.path.join(HERE, "kiln_infer_bench"), "benchmarks/kiln_infer_bench"])
    ort_py = find([os.path.join(HERE, "ort_infer_bench.py"), "benchmarks/ort_infer_bench.py"])
    quant_py = find([os.path.join(HERE, "ort_quantize_static.py"), "benchmarks/ort_quantize_static.py"])
    py = venv_python()
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(a.threads)
    env["KILN_THREAD_CONFIG_APPLIED"] = "1"
    tmp = tempfile.mkdtemp(prefix="kiln_inference_")
    onnx, onnx_int8, onnx_static = {}, {}, {}
    for m in MODELS:
        onnx[m] = os.path.join(tmp, m + ".onnx")
        onnx_int8[m] = os.path.join(tmp, m + "_int8.onnx")
        onnx_static[m] = os.path.join(tmp, m + "_ort_int8.onnx")
        calib = os.path.join(tmp, m + "_calibration.f32")
        for path, extra in ((onnx[m], []), (onnx_int8[m], ["--int8"])):
            r = subprocess.run([kiln, "--model", m, "--export_onnx", path] + extra, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("inference_compare: export of %s failed:\n%s%s" % (m, r.stdout, r.stderr))
        r = subprocess.run([kiln, "--model", m, "--export_calibration", calib], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("inference_compare: calibration images of %s failed:\n%s%s" % (m, r.stdout, r.stderr))
        r = subprocess.run([a.quant_python or py, quant_py, "--onnx", onnx[m], "--calibration", calib, "--out",
                            onnx_static[m]], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("inference_compare: quantize_static of %s failed:\n%s%s" % (m, r.stdout, r.stderr))

    results = {}
    ort_version = "?"
    for rep in range(a.reps):
        for m in MODELS:
            for b in MODEL_BATCHES.get(m, BATCHES):
                jobs = []
                for col, engine, dtype in ENGINES:
                    if engine.startswith("ort"):
                        path = {"ort": onnx, "ort_int8": onnx_int8, "ort_static_int8": onnx_static}[engine][m]
                        cmd = [py, ort_py, "--onnx", path, "--batch", str(b),
                               "--seconds", str(a.seconds), "--threads", str(a.threads)]
                    else:
                        cmd = [kiln, "--model", m, "--engine", engine, "--dtype", dtype, "--batch", str(b),
                               "--seconds", str(a.seconds)]
                    jobs.append((col, cmd))
                k = rep % len(jobs)
                for col, cmd in jobs[k:] + jobs[:k]:
                    r = run(cmd, env)
                    ort_version = r.get("ort_version", ort_version)
                    results.setdefault((m, b, col), []).append(r)
        print("repetition %d/%d done" % (rep + 1, a.reps), flush=True)

    def med(m, b, col, key):
        return statistics.median(float(r[key]) for r in results[(m, b, col)])

    cpu, have, missing = cpu_facts()
    date = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    head = ("CPU: %s; flags: %s (absent: %s); %d threads per engine; %s; ONNX Runtime %s (PyPI); "
            "%d repetitions of %.1f s, medians; %s" % (cpu, " ".join(have), " ".join(missing) or "none", a.threads,
                                                         date, ort_version, a.reps, a.seconds, platform.node()))
    cols = [c for c, _, _ in ENGINES]
    lines = ["| model | batch | metric | " + " | ".join(cols) + " | Inference / predict | Inference / ORT | p99 / p50 (Inference) |",
             "|" + "---|" * (len(cols) + 6)]
    failures = []
    int8_cells = ["| model | batch | Kiln int8 / Kiln f32 | Kiln int8 / ORT int8 (Kiln's QDQ) | "
                  "Kiln int8 / ORT int8 (quantize_static) |", "|---|---|---|---|---|"]
    for m in MODELS:
        for b in MODEL_BATCHES.get(m, BATCHES):
            ips = {c: med(m, b, c, "images_per_sec") for c in cols}
            vs_predict = ips["InferenceModel"] / ips["Model::predict"]
            vs_ort = ips["InferenceModel"] / ips["ONNX Runtime"]
            tail = ""
            if b == 1:
                p50 = {c: med(m, b, c, "p50_us") for c in cols}
                p99 = {c: med(m, b, c, "p99_us") for c in cols}
                tail_ratio = p99["InferenceModel"] / p50["InferenceModel"]
                tail = "%.2f" % tail_ratio
                lines.append("| %s | 1 | p50 / p99 latency (us) | %s | %.2fx | %.2fx | %s |" % (
                    m, " | ".join("%.1f / %.1f" % (p50[c], p99[c]) for c in cols), vs_predict, vs_ort, tail))
                if tail_ratio >= 2.0:
                    failures.append("%s b1: p99/p50 %.2f >= 2" % (m, tail_ratio))
            else:
                lines.append("| %s | %d | images/s | %s | %.2fx | %.2fx |  |" % (
                    m, b, " | ".join("%.0f" % ips[c] for c in cols), vs_predict, vs_ort))
            int8_vs_f32 = ips["InferenceModel int8"] / ips["InferenceModel"]
            int8_vs_ort = ips["InferenceModel int8"] / ips["ONNX Runtime int8"]
            int8_vs_static = ips["InferenceModel int8"] / ips["ORT quantize_static int8"]
            int8_cells.append("| %s | %d | %.2fx | %.2fx | %.2fx |" % (m, b, int8_vs_f32, int8_vs_ort, int8_vs_static))
            if m == "resnet18" and b == 32 and int8_vs_f32 < 2.5:
                failures.append("resnet18 b32: int8/f32 %.2fx < 2.5x" % int8_vs_f32)
            if m == "cnn" and b == 256 and int8_vs_f32 < 2.0:
                failures.append("cnn b256: int8/f32 %.2fx < 2x" % int8_vs_f32)
            if int8_vs_ort < 1.0:
                failures.append("%s b%d: int8 vs ORT int8 %.2fx < 1.0x" % (m, b, int8_vs_ort))
            if int8_vs_static < 1.0:
                failures.append("%s b%d: int8 vs ORT quantize_static int8 %.2fx < 1.0x" % (m, b, int8_vs_static))
            if vs_predict < 1.5:
                failures.append("%s b%d: InferenceModel/predict %.2fx < 1.5x" % (m, b, vs_predict))
            if vs_ort < 1.0:
                failures.append("%s b%d: InferenceModel/ORT %.2fx < 1.0x" % (m, b, vs_ort))
    verdict = "all met" if not failures else "MISSED: " + "; ".join(failures)
    table = "\n".join(lines) + "\n\nINT8 (quant::quantize, minmax calibration on 256 synthetic inputs; ONNX Runtime runs the QDQ export of the same int8 model, and its own quantize_static model from the same calibration images):\n\n" + "\n".join(int8_cells)
    print(head)
    print(table)
    print("targets: " + verdict)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, stem + ".md"), "w") as f:
        f.write("# Inference: Model::predict vs InferenceModel vs ONNX Runtime\n\n%s\n\n"
                "Ratios compare throughput (images/s; at batch 1 that is 1 / mean latency).\n\n%s\n\ntargets: %s\n"
                % (head, table, verdict))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (python3-matplotlib): no chart written")
        return 0
    groups = ["%s b%d" % (m, b) for m in MODELS for b in MODEL_BATCHES.get(m, BATCHES)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(cols)
    for i, c in enumerate(cols):
        vals = [med(m, b, c, "images_per_sec") / med(m, b, "ONNX Runtime", "images_per_sec") for m in MODELS for b in MODEL_BATCHES.get(m, BATCHES)]
        ax.bar([g + i * width for g in range(len(groups))], vals, width, label=c)
    ax.set_xticks([g + width * (len(cols) - 1) / 2 for g in range(len(groups))])
    ax.set_xticklabels(groups)
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_ylabel("throughput relative to ONNX Runtime fp32")
    ax.set_title("Inference, %d threads, %s" % (a.threads, cpu[:48]))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, stem + ".png"), dpi=110)
    print("wrote %s/%s.md and %s.png" % (a.out, stem, stem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
