"""Kiln's inference engines against ONNX Runtime and OpenVINO, fp32 and int8, side by side in
one run (issues 8, 9 and 25).

Every model (the MLP, the Keras CNN, ResNet-18 on 32x32x3; with --models, also
mobilenet_v3_small, the mobilenet_v3_fashion_mnist example's MobileNetV3Small) is first trained
on Fashion-MNIST by Kiln (one epoch; ResNet-18 on a subset: --resnet_train_images;
MobileNetV3Small for 3 epochs with the example's cosine-decayed rate: --mobilenet_epochs) and
exported to ONNX; every peer runs that same file:
  ONNX Runtime fp32; ONNX Runtime int8 from its own quantize_static, QDQ per-channel and
  QOperator (both shown; the faster one is the int8 comparison); OpenVINO fp32; OpenVINO int8
  from NNCF.
Kiln runs Model::predict, InferenceModel fp32 and bf16, and its int8 model (quant::quantize).
Every int8 engine calibrates on the same 256 Fashion-MNIST training images; every engine gets
the same thread count (--threads) and batches 1 (p50/p99 latency), 32 and 256 (throughput).
Engines alternate within each repetition (the first one rotates) and the tables show medians.
Each engine's top-1 accuracy on the 10000 Fashion-MNIST test images (--accuracy_images) is
measured once. MobileNetV3Small's traced models run only at the batch they were traced with
(its ZeroPadding2D layers trace as zero constants of that batch), so it is traced, exported and
quantized once per batch (1, 32, 256, and 250 for accuracy), every engine alike.

Targets checked:
  - InferenceModel fp32 >= 1.0x the best of ONNX Runtime fp32 and OpenVINO fp32, every row;
  - Kiln int8 >= 1.0x the best peer int8, every row, at <= 1 point of accuracy drop from Kiln fp32;
  - (issue 8) InferenceModel fp32 >= 1.5x Model::predict; at batch 1, p99 < 2x p50;
  - (issue 9) Kiln int8 >= 2.5x Kiln fp32 on ResNet-18 b32, >= 2x on the CNN b256.
The peers come from .venv-peers (bash scripts/setup --peers); a peer that does not import is
left out and the report says which. Writes benchmarks/results/<report>.md and <report>.png
(--report, default inference).

Run: bazel run //benchmarks:inference -- [--reps 3] [--seconds 2] [--threads 2] [--quick]
                                         [--models mlp,cnn,resnet18] [--resnet_train_images 8192]
                                         [--mobilenet_train_images 60000] [--report inference]
  MobileNetV3Small alone: --models mobilenet_v3_small --report inference_mobilenet
  ViT alone: --models vit --report inference_vit [--vit_train_images 60000]
  LSTM alone: --models lstm --report inference_lstm [--lstm_train_images 60000]
"""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile

from bench_machine import cpu_info, first_existing, run_tool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
PEERS_PY = os.path.join(ROOT, ".venv-peers", "bin", "python")
SETUP_HINT = "run `bash scripts/setup --peers`"
MODELS = ["mlp", "cnn", "resnet18", "mobilenet_v3_small", "vit", "lstm"]
DEFAULT_MODELS = ["mlp", "cnn", "resnet18"]
BATCHES = [1, 32, 256]
# Models whose traced files run only at their traced batch (inference_models.h: traced_batch).
FIXED_BATCH_MODELS = {"mobilenet_v3_small"}
ACCURACY_BATCH = 250  # peer_infer_bench.py's and kiln_infer_bench's
# (column, engine, dtype, kind): kind "kiln" runs kiln_infer_bench; "peer" peer_infer_bench.py.
ENGINES = [("Model::predict", "predict", "f32", "kiln"), ("InferenceModel", "inference", "f32", "kiln"),
           ("InferenceModel bf16", "inference", "bf16", "kiln"), ("Kiln int8", "int8", "f32", "kiln"),
           ("ORT fp32", "ort", "f32", "peer"), ("ORT int8 QDQ", "ort_qdq", "int8", "peer"),
           ("ORT int8 QOp", "ort_qop", "int8", "peer"), ("OpenVINO fp32", "ov", "f32", "peer"),
           ("OpenVINO int8", "ov_int8", "int8", "peer")]
FP32_PEERS = ["ORT fp32", "OpenVINO fp32"]
INT8_PEERS = ["ORT int8 QDQ", "ORT int8 QOp", "OpenVINO int8"]
ACCURACY_COLUMNS = ["InferenceModel", "InferenceModel bf16", "Kiln int8"] + FP32_PEERS + INT8_PEERS
MAX_INT8_DROP = 0.01  # one point of top-1 accuracy


def find(cands):
    return first_existing(cands, "inference_compare")


def run(cmd, env, what):
    return run_tool(cmd, env, what, "inference_compare")


def try_peer(cmd, env):
    """A peer's run: its key=value dict, or None and the last line of its error. A peer that fails
    on one model (OpenVINO cannot compile NNCF's int8 LSTM, for instance) loses that model's
    cells, not the whole report."""
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [l for l in (r.stderr + r.stdout).strip().splitlines() if l.strip()]
        return None, (lines[-1][:200] if lines else "exit status %d" % r.returncode)
    return dict(re.findall(r"(\w+)=(\S+)", r.stdout)), None


def probe_peers(env):
    """{engine: None if usable, else why not}, and version strings."""
    status, versions = {}, {}
    peers = [e for _, e, _, k in ENGINES if k == "peer"]
    if not os.path.exists(PEERS_PY):
        return {e: "%s missing: %s" % (PEERS_PY, SETUP_HINT) for e in peers}, versions
    for module, engines in (("onnxruntime", ["ort", "ort_qdq", "ort_qop"]), ("openvino", ["ov"]),
                            ("nncf", ["ov_int8"])):
        r = subprocess.run([PEERS_PY, "-c", "import %s as m; print(m.__version__)" % module], env=env,
                           capture_output=True, text=True)
        for e in engines:
            status[e] = None if r.returncode == 0 else "%s does not import (%s): %s" % (
                module, (r.stderr.strip().splitlines() or ["?"])[-1], SETUP_HINT)
        if r.returncode == 0:
            versions[module] = r.stdout.strip().splitlines()[-1].split("-")[0]
    if status["ov"]:
        status["ov_int8"] = status["ov"]
    return status, versions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--resnet_train_images", type=int, default=8192,
                    help="Fashion-MNIST training images ResNet-18 trains on (one epoch); the MLP and CNN use all 60000")
    ap.add_argument("--mobilenet_train_images", type=int, default=60000,
                    help="Fashion-MNIST training images MobileNetV3Small trains on")
    ap.add_argument("--mobilenet_epochs", type=int, default=3,
                    help="MobileNetV3Small's epochs (the others train one): after one, its BatchNormalization "
                         "moving statistics (momentum 0.999) still trail the weights and every engine scores 10%%")
    ap.add_argument("--report", default="inference", help="name of the .md and .png written under --out")
    ap.add_argument("--accuracy_images", type=int, default=10000, help="test images each engine's accuracy is taken on")
    ap.add_argument("--quick", action="store_true",
                    help="one repetition of 0.3 s, short training, accuracy on 1000 images: a smoke run")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--vit_train_images", type=int, default=60000, help="Fashion-MNIST images the ViT trains on")
    ap.add_argument("--lstm_train_images", type=int, default=60000, help="Fashion-MNIST images the LSTM trains on")
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if m]
    if not models or any(m not in MODELS for m in models):
        sys.exit("inference_compare: --models takes a comma-separated subset of " + ",".join(MODELS))
    train_images = {"mlp": 60000, "cnn": 60000, "resnet18": a.resnet_train_images,
                    "mobilenet_v3_small": a.mobilenet_train_images, "vit": a.vit_train_images,
                    "lstm": a.lstm_train_images}
    epochs = {m: 1 for m in MODELS}
    epochs["mobilenet_v3_small"] = a.mobilenet_epochs
    if a.quick:
        a.reps, a.seconds = 1, 0.3
        epochs = {m: 1 for m in MODELS}
        train_images = {"mlp": 10000, "cnn": 10000, "resnet18": min(512, a.resnet_train_images),
                        "mobilenet_v3_small": min(512, a.mobilenet_train_images),
                        "vit": min(2048, a.vit_train_images), "lstm": min(2048, a.lstm_train_images)}
        a.accuracy_images = min(a.accuracy_images, 1000)
    if a.accuracy_images < ACCURACY_BATCH or a.accuracy_images % ACCURACY_BATCH:
        sys.exit("inference_compare: --accuracy_images must be a positive multiple of 250 (OpenVINO's static batch)")
    kiln = find([os.path.join(HERE, "kiln_infer_bench"), "bazel-bin/benchmarks/kiln_infer_bench"])
    peer_py = find([os.path.join(HERE, "peer_infer_bench.py"), "benchmarks/peer_infer_bench.py"])
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(a.threads)
    env["KILN_THREAD_CONFIG_APPLIED"] = "1"
    status, versions = probe_peers(env)
    engines = [e for e in ENGINES if e[3] == "kiln" or status.get(e[1]) is None]
    missing = ["%s (%s)" % (col, status[e]) for col, e, _, k in ENGINES if k == "peer" and status.get(e)]
    print("peers not run: " + ("; ".join(missing) if missing else "none"), flush=True)

    tmp = tempfile.mkdtemp(prefix="kiln_inference_")
    files, accuracy = {}, {}
    failed = {}  # (model, column) -> why that peer could not run that model

    def runs(m, col):
        return (m, col) not in failed

    def model_args(m, kind, e, batch):
        """The arguments that pick the model file (peers) or the traced batch (Kiln) for `batch`."""
        tb = batch if m in FIXED_BATCH_MODELS else None
        if kind == "peer":
            return ["--model_file", files[(m, e, tb)]]
        return ["--trace_batch", str(tb)] if tb else []

    for m in models:
        stem = os.path.join(tmp, m)
        weights, calib = stem + ".weights", stem + "_calib.npy"
        test_x, test_y = stem + "_test_x.npy", stem + "_test_y.npy"
        print("%s: training on %d Fashion-MNIST images for %d epoch(s), exporting, quantizing" % (
            m, train_images[m], epochs[m]), flush=True)
        run([kiln, "--model", m, "--train", weights, "--train_images", str(train_images[m]), "--epochs",
             str(epochs[m])], env, "training " + m)
        run([kiln, "--model", m, "--write_data", tmp, "--test_images", str(a.accuracy_images)], env,
            "writing data for " + m)
        # One file per batch for a fixed-batch model (None: one file runs every batch).
        for tb in (BATCHES + [ACCURACY_BATCH]) if m in FIXED_BATCH_MODELS else [None]:
            suffix = "_b%d" % tb if tb else ""
            fixed = ["--trace_batch", str(tb)] if tb else []
            onnx = stem + suffix + ".onnx"
            run([kiln, "--model", m, "--weights", weights, "--export_onnx", onnx] + fixed, env, "export of " + m)
            files[(m, "ort", tb)] = files[(m, "ov", tb)] = onnx
            for col, e, _, kind in engines:
                if e in ("ort_qdq", "ort_qop", "ov_int8"):
                    path = stem + suffix + "_" + e + (".xml" if e == "ov_int8" else ".onnx")
                    if not runs(m, col):
                        continue
                    _, err = try_peer([PEERS_PY, peer_py, "--prepare", e, "--onnx", onnx, "--calib", calib, "--out",
                                       path] + (["--calib_batch", str(tb)] if tb else []), env)
                    if err:
                        failed[(m, col)] = "quantization failed: " + err
                        print("%s on %s: %s" % (col, m, failed[(m, col)]), flush=True)
                    files[(m, e, tb)] = path

        for col, e, dtype, kind in engines:
            if col not in ACCURACY_COLUMNS or not runs(m, col):
                continue
            if kind == "kiln":
                cmd = [kiln, "--model", m, "--engine", e, "--dtype", dtype, "--weights", weights, "--calib", calib]
            else:
                cmd = [PEERS_PY, peer_py, "--engine", e, "--threads", str(a.threads)]
            cmd += model_args(m, kind, e, ACCURACY_BATCH) + ["--accuracy_x", test_x, "--accuracy_y", test_y]
            if kind == "kiln":
                accuracy[(m, col)] = float(run(cmd, env, "accuracy of %s on %s" % (col, m))["accuracy"])
                continue
            out, err = try_peer(cmd, env)
            if err:
                failed[(m, col)] = "failed: " + err
                print("%s on %s: %s" % (col, m, failed[(m, col)]), flush=True)
            else:
                accuracy[(m, col)] = float(out["accuracy"])
        print("%s accuracy: %s" % (m, ", ".join("%s %.4f" % (c, accuracy[(m, c)]) for c, *_ in engines
                                               if (m, c) in accuracy)), flush=True)
        for key, value in (("weights", weights), ("calib", calib)):
            files[(m, key)] = value

    results = {}
    for rep in range(a.reps):
        for m in models:
            for b in BATCHES:
                jobs = []
                for col, e, dtype, kind in engines:
                    if not runs(m, col):
                        continue
                    if kind == "kiln":
                        cmd = [kiln, "--model", m, "--engine", e, "--dtype", dtype, "--batch", str(b), "--seconds",
                               str(a.seconds), "--weights", files[(m, "weights")], "--calib", files[(m, "calib")]]
                    else:
                        cmd = [PEERS_PY, peer_py, "--engine", e, "--batch", str(b), "--seconds", str(a.seconds),
                               "--threads", str(a.threads)]
                    jobs.append((col, cmd + model_args(m, kind, e, b)))
                k = rep % len(jobs)
                for col, cmd in jobs[k:] + jobs[:k]:
                    if not runs(m, col):
                        continue  # failed at an earlier batch of this repetition
                    if col in dict((c, 1) for c, _, _, kind in engines if kind == "kiln"):
                        results.setdefault((m, b, col), []).append(run(cmd, env, "%s on %s b%d" % (col, m, b)))
                        continue
                    out, err = try_peer(cmd, env)
                    if err:
                        failed[(m, col)] = "failed at batch %d: %s" % (b, err)
                        print("%s on %s: %s" % (col, m, failed[(m, col)]), flush=True)
                    else:
                        results.setdefault((m, b, col), []).append(out)
        print("repetition %d/%d done" % (rep + 1, a.reps), flush=True)

    def med(m, b, col, key):
        return statistics.median(float(r[key]) for r in results[(m, b, col)])

    def ran(m, b, col):
        return runs(m, col) and (m, b, col) in results

    cpu, flags = cpu_info()
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = ("CPU: %s; flags: %s (absent: %s); %d threads per engine; %s; peers: ONNX Runtime %s, OpenVINO %s, "
            "NNCF %s (.venv-peers, PyPI); Kiln: oneDNN 2.6 (Debian); %d repetition(s) of %.1f s, medians" % (
                cpu, " ".join(f for f in wanted if f in flags), " ".join(f for f in wanted if f not in flags) or "none",
                a.threads, date, versions.get("onnxruntime", "n/a"), versions.get("openvino", "n/a"),
                versions.get("nncf", "n/a"), a.reps, a.seconds))
    cols = [c for c, *_ in engines]
    fp32_peers = [c for c in FP32_PEERS if c in cols]
    int8_peers = [c for c in INT8_PEERS if c in cols]
    lines = ["| model | batch | metric | " + " | ".join(cols) + " | InferenceModel / best fp32 peer "
             "| Kiln int8 / best int8 peer | InferenceModel / predict |", "|" + "---|" * (len(cols) + 6)]
    failures = []
    for m in models:
        for b in BATCHES:
            ips = {c: med(m, b, c, "images_per_sec") for c in cols if ran(m, b, c)}
            vs_predict = ips["InferenceModel"] / ips["Model::predict"]
            fp32_here = [c for c in fp32_peers if c in ips]
            int8_here = [c for c in int8_peers if c in ips]
            best_fp32 = max(fp32_here, key=lambda c: ips[c]) if fp32_here else None
            best_int8 = max(int8_here, key=lambda c: ips[c]) if int8_here else None
            fp32_cell = int8_cell = "n/a (no peer)"
            if best_fp32:
                r = ips["InferenceModel"] / ips[best_fp32]
                fp32_cell = "%.2fx (%s)" % (r, best_fp32)
                if r < 1.0:
                    failures.append("%s b%d: InferenceModel / %s %.2fx < 1.0x" % (m, b, best_fp32, r))
            if best_int8:
                r = ips["Kiln int8"] / ips[best_int8]
                int8_cell = "%.2fx (%s; top-1 %.2f%% vs %.2f%%)" % (r, best_int8, 100 * accuracy[(m, "Kiln int8")],
                                                                   100 * accuracy[(m, best_int8)])
                if r < 1.0:
                    failures.append("%s b%d: Kiln int8 / %s %.2fx < 1.0x" % (m, b, best_int8, r))
            if b == 1:
                p50 = {c: med(m, b, c, "p50_us") for c in ips}
                p99 = {c: med(m, b, c, "p99_us") for c in ips}
                tail_ratio = p99["InferenceModel"] / p50["InferenceModel"]
                lines.append("| %s | 1 | p50 / p99 latency (us) | %s | %s | %s | %.2fx |" % (
                    m, " | ".join("%.1f / %.1f" % (p50[c], p99[c]) if c in ips else "n/a" for c in cols), fp32_cell,
                    int8_cell, vs_predict))
                if tail_ratio >= 2.0:
                    failures.append("%s b1: InferenceModel p99/p50 %.2f >= 2" % (m, tail_ratio))
            else:
                lines.append("| %s | %d | images/s | %s | %s | %s | %.2fx |" % (
                    m, b, " | ".join("%.0f" % ips[c] if c in ips else "n/a" for c in cols), fp32_cell, int8_cell,
                    vs_predict))
            int8_vs_f32 = ips["Kiln int8"] / ips["InferenceModel"]
            if m == "resnet18" and b == 32 and int8_vs_f32 < 2.5:
                failures.append("resnet18 b32: Kiln int8 / Kiln f32 %.2fx < 2.5x" % int8_vs_f32)
            if m == "cnn" and b == 256 and int8_vs_f32 < 2.0:
                failures.append("cnn b256: Kiln int8 / Kiln f32 %.2fx < 2x" % int8_vs_f32)
            if vs_predict < 1.5:
                failures.append("%s b%d: InferenceModel / predict %.2fx < 1.5x" % (m, b, vs_predict))
    acc_cols = [c for c in ACCURACY_COLUMNS if c in cols]
    acc_lines = ["| model | trained on | " + " | ".join(acc_cols) + " |", "|" + "---|" * (len(acc_cols) + 2)]
    for m in models:
        cells = []
        for c in acc_cols:
            if (m, c) not in accuracy:
                cells.append("n/a")
                continue
            v = accuracy[(m, c)]
            base = accuracy[(m, "InferenceModel")] if c in ("Kiln int8", "InferenceModel bf16") else (
                accuracy.get((m, "ORT fp32")) if c.startswith("ORT int8") else (
                    accuracy.get((m, "OpenVINO fp32")) if c == "OpenVINO int8" else None))
            cells.append("%.2f%%" % (100 * v) + (" (%+.2f)" % (100 * (v - base)) if base is not None else ""))
        acc_lines.append("| %s | %d images, %d epoch%s | %s |" % (m, train_images[m], epochs[m],
                                                                "s" if epochs[m] > 1 else "", " | ".join(cells)))
        drop = accuracy[(m, "InferenceModel")] - accuracy[(m, "Kiln int8")]
        if drop > MAX_INT8_DROP:
            failures.append("%s: Kiln int8 accuracy drop %.2f points > %.0f" % (m, 100 * drop, 100 * MAX_INT8_DROP))
    verdict = "all met" if not failures else "MISSED: " + "; ".join(failures)
    table = "\n".join(lines)
    acc_table = ("Top-1 accuracy on the first %d Fashion-MNIST test images (in brackets: points against the same "
                 "engine family's fp32; Kiln's int8 and bf16 against InferenceModel fp32):\n\n" % a.accuracy_images +
                 "\n".join(acc_lines))
    notes = ("ORT int8 QDQ / QOp: onnxruntime.quantization.quantize_static (after quant_pre_process), per-channel s8 "
             "weights, u8 activations, minmax calibration. OpenVINO int8: nncf.quantize (default preset) on the "
             "same file. Kiln int8: quant::quantize, minmax. OpenVINO runs with INFERENCE_PRECISION_HINT=f32, one "
             "stream, the input reshaped to the batch; ONNX Runtime with ORT_ENABLE_ALL, one inter-op thread.")
    peers_line = "peers not run: " + ("; ".join(missing) if missing else "none")
    if failed:
        peers_line += "\n\npeers that failed on a model (n/a in its cells): " + "; ".join(
            "%s on %s: %s" % (c, m, why) for (m, c), why in sorted(failed.items()))
    quick = "\n\n(--quick: a smoke run, not a measurement)" if a.quick else ""
    report = "%s\n\n%s\n\n%s\n\n%s\n\n%s%s\n\ntargets: %s\n" % (head, peers_line, table, acc_table, notes, quick, verdict)
    print(report)
    os.makedirs(a.out, exist_ok=True)
    md = os.path.join(a.out, a.report + ("_quick.md" if a.quick else ".md"))
    with open(md, "w") as f:
        f.write("# Inference: Kiln against ONNX Runtime and OpenVINO, fp32 and int8\n\n" + report)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (python3-matplotlib): no chart written; wrote %s" % md)
        return 0
    groups = ["%s b%d" % (m, b) for m in models for b in BATCHES]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    shown = [c for c in cols if c != "Model::predict"]
    width = 0.8 / len(shown)
    base = fp32_peers[0] if fp32_peers else "InferenceModel"
    for i, c in enumerate(shown):
        vals = [med(m, b, c, "images_per_sec") / med(m, b, base, "images_per_sec") if ran(m, b, c) and ran(m, b, base)
                else 0.0 for m in models for b in BATCHES]
        ax.bar([g + i * width for g in range(len(groups))], vals, width, label=c)
    ax.set_xticks([g + width * (len(shown) - 1) / 2 for g in range(len(groups))])
    ax.set_xticklabels(groups, fontsize=8)
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_ylabel("throughput relative to %s" % base)
    ax.set_title("Inference, %d threads, %s, %s" % (a.threads, cpu[:48], date), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    png = os.path.join(a.out, a.report + ("_quick.png" if a.quick else ".png"))
    fig.savefig(png, dpi=110)
    print("wrote %s and %s" % (md, png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
