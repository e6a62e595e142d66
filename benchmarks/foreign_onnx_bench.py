"""Kiln on ONNX files PyTorch wrote, against ONNX Runtime on the same files (issue 23).

The models are the checked-in torchvision exports of tests/data/foreign_onnx (resnet10 at
32x32, mobilenet_v3_small w0.5 at 64x64, torch.onnx.export). Engines, side by side in one run:
  InferenceModel       Kiln fp32: import_onnx, then InferenceModel (kiln_onnx_bench --engine inference)
  ORT fp32             ONNX Runtime on the same file
  Kiln int8            quant::quantize of the imported graph (minmax) on the calibration images
  ORT int8 QDQ         ONNX Runtime on its own quantize_static output (QDQ, per-channel s8
                       weights, u8 activations, after quant_pre_process), same calibration images
  Kiln on ORT's QDQ    Kiln importing that same QDQ file (its scales, its rounding points)
Every engine gets the same thread count (--threads), batches 1 (p50/p99 latency), 32 and 256
(throughput); engines alternate within each repetition (the first one rotates); medians.
Agreement: each engine's top-1 against ONNX Runtime fp32's on --agreement_images random images.
The calibration and agreement images are standard-normal (seeded), the files' weights random
(torchvision constructors, seeded), so agreement is a fidelity measure, not accuracy.
Targets: InferenceModel / ORT fp32 >= 1.0x and Kiln int8 / ORT int8 QDQ >= 1.0x on every row.
Writes benchmarks/results/foreign_onnx.md. Without .venv-peers (as in CI) only InferenceModel and
Kiln int8 run, with agreement against InferenceModel's top-1, and the report says so.

Run: bazel run -c opt //benchmarks:foreign_onnx -- [--reps 3] [--seconds 2] [--threads 2] [--quick]
"""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile

from bench_machine import cpu_info, first_existing, run_tool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
PEERS_PY = os.path.join(ROOT, ".venv-peers", "bin", "python")
MODELS = ["resnet10", "mobilenet_v3_small"]
BATCHES = [1, 32, 256]
# (column, engine, kind, file): kind "kiln" runs kiln_onnx_bench, "peer" peer_infer_bench.py;
# file "float" is the PyTorch export, "qdq" ONNX Runtime's quantized copy of it.
ENGINES = [("InferenceModel", "inference", "kiln", "float"), ("ORT fp32", "ort", "peer", "float"),
           ("Kiln int8", "int8", "kiln", "float"), ("ORT int8 QDQ", "ort_qdq", "peer", "qdq"),
           ("Kiln on ORT's QDQ", "qdq", "kiln", "qdq")]
CALIB_IMAGES = 64

# Writes the calibration images and, for the agreement check, random images with ONNX Runtime
# fp32's top-1 as labels (run in .venv-peers).
DATA_SCRIPT = r"""
import sys, numpy as np, onnxruntime as ort
model, calib, x_path, y_path, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
shape = [int(d) for d in inp.shape[1:]]
np.save(calib, np.random.default_rng(11).standard_normal([%d] + shape).astype(np.float32))
x = np.random.default_rng(12).standard_normal([n] + shape).astype(np.float32)
np.save(x_path, x)
np.save(y_path, np.concatenate([np.argmax(sess.run(None, {inp.name: x[i:i + 250]})[0], -1) for i in range(0, n, 250)]).astype(np.int32))
""" % CALIB_IMAGES

# Without the peers: the same seeded images in the shape of the file's checked-in input, from
# numpy alone; the agreement reference is then Kiln's own fp32 (kiln_onnx_bench --predictions_out).
NUMPY_DATA_SCRIPT = r"""
import sys, numpy as np
example, calib, x_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
shape = list(np.load(example).shape[1:])
np.save(calib, np.random.default_rng(11).standard_normal([%d] + shape).astype(np.float32))
np.save(x_path, np.random.default_rng(12).standard_normal([n] + shape).astype(np.float32))
""" % CALIB_IMAGES


def find(cands):
    return first_existing(cands, "foreign_onnx_bench")


def run(cmd, env, what):
    return run_tool(cmd, env, what, "foreign_onnx_bench")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--agreement_images", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="one repetition of 0.3 s, agreement on 250 images: a smoke run")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if m]
    if not models or any(m not in MODELS for m in models):
        sys.exit("foreign_onnx_bench: --models takes a comma-separated subset of " + ",".join(MODELS))
    if a.quick:
        a.reps, a.seconds, a.agreement_images = 1, 0.3, 250
    if a.agreement_images < 250 or a.agreement_images % 250:
        sys.exit("foreign_onnx_bench: --agreement_images must be a positive multiple of 250")
    # Without .venv-peers (CI) only Kiln's engines on the PyTorch files run.
    no_peers = None if os.path.exists(PEERS_PY) else "%s missing: run `bash scripts/setup --peers`" % PEERS_PY
    engines = [e for e in ENGINES if not no_peers or (e[2] == "kiln" and e[3] == "float")]
    print("peers not run: " + ("; ".join("%s (%s)" % (e[0], no_peers) for e in ENGINES if e not in engines) or "none"),
          flush=True)
    reference = "ONNX Runtime fp32" if not no_peers else "InferenceModel (Kiln fp32; ONNX Runtime not run)"
    kiln = find([os.path.join(HERE, "kiln_onnx_bench"), "bazel-bin/benchmarks/kiln_onnx_bench"])
    peer_py = find([os.path.join(HERE, "peer_infer_bench.py"), "benchmarks/peer_infer_bench.py"])
    data_dir = find([os.path.join(HERE, "..", "tests", "data", "foreign_onnx"), os.path.join(ROOT, "tests", "data", "foreign_onnx")])
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(a.threads)
    env["KILN_THREAD_CONFIG_APPLIED"] = "1"
    version = "n/a" if no_peers else subprocess.run([PEERS_PY, "-c", "import onnxruntime as m; print(m.__version__)"],
                                                    env=env, capture_output=True, text=True).stdout.strip() or "n/a"

    tmp = tempfile.mkdtemp(prefix="kiln_foreign_onnx_")
    files, agreement = {}, {}
    for m in models:
        files[(m, "float")] = os.path.join(data_dir, m + ".onnx")
        calib, x, y = (os.path.join(tmp, m + s) for s in ("_calib.npy", "_x.npy", "_y.npy"))
        files[(m, "calib")] = calib
        if no_peers:
            subprocess.run([sys.executable, "-c", NUMPY_DATA_SCRIPT, os.path.join(data_dir, m + ".input.npy"), calib, x,
                            str(a.agreement_images)], env=env, check=True)
            run(command(kiln, peer_py, "inference", "kiln", files[(m, "float")], calib, a.threads) +
                ["--accuracy_x", x, "--predictions_out", y], env, "InferenceModel's top-1 on " + m)
        else:
            subprocess.run([PEERS_PY, "-c", DATA_SCRIPT, files[(m, "float")], calib, x, y, str(a.agreement_images)],
                           env=env, check=True)
            files[(m, "qdq")] = os.path.join(tmp, m + "_qdq.onnx")
            print("%s: ONNX Runtime quantize_static on %d calibration images" % (m, CALIB_IMAGES), flush=True)
            run([PEERS_PY, peer_py, "--prepare", "ort_qdq", "--onnx", files[(m, "float")], "--calib", calib, "--out",
                 files[(m, "qdq")]], env, "ORT quantization of " + m)
        for col, e, kind, f in engines:
            cmd = command(kiln, peer_py, e, kind, files[(m, f)], files[(m, "calib")], a.threads)
            agreement[(m, col)] = float(run(cmd + ["--accuracy_x", x, "--accuracy_y", y], env,
                                            "agreement of %s on %s" % (col, m))["accuracy"])
        print("%s top-1 agreement with %s: %s" % (m, reference, ", ".join("%s %.4f" % (c, agreement[(m, c)])
                                                                           for c, *_ in engines)), flush=True)

    results = {}
    for rep in range(a.reps):
        for m in models:
            for b in BATCHES:
                jobs = [(col, command(kiln, peer_py, e, kind, files[(m, f)], files[(m, "calib")], a.threads) +
                         ["--batch", str(b), "--seconds", str(a.seconds)]) for col, e, kind, f in engines]
                k = rep % len(jobs)
                for col, cmd in jobs[k:] + jobs[:k]:
                    results.setdefault((m, b, col), []).append(run(cmd, env, "%s on %s b%d" % (col, m, b)))
        print("repetition %d/%d done" % (rep + 1, a.reps), flush=True)

    def med(m, b, col, key):
        return statistics.median(float(r[key]) for r in results[(m, b, col)])

    cpu, flags = cpu_info()
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = ("CPU: %s; flags: %s (absent: %s); %d threads per engine; %s; ONNX Runtime %s (.venv-peers, PyPI, "
            "ORT_ENABLE_ALL, one inter-op thread); Kiln: oneDNN 2.6 (Debian); %d repetition(s) of %.1f s, medians" % (
                cpu, " ".join(f for f in wanted if f in flags), " ".join(f for f in wanted if f not in flags) or "none",
                a.threads, date, version, a.reps, a.seconds))
    cols = [c for c, *_ in engines]
    lines = ["| model | batch | metric | " + " | ".join(cols) + " | InferenceModel / ORT fp32 | Kiln int8 / ORT int8 QDQ "
             "| Kiln on ORT's QDQ / ORT int8 QDQ |", "|" + "---|" * (len(cols) + 6)]
    failures = []
    for m in models:
        for b in BATCHES:
            ips = {c: med(m, b, c, "images_per_sec") for c in cols}
            cells = []
            for kiln_col, peer_col in (("InferenceModel", "ORT fp32"), ("Kiln int8", "ORT int8 QDQ"),
                                       ("Kiln on ORT's QDQ", "ORT int8 QDQ")):
                if kiln_col not in ips or peer_col not in ips:
                    cells.append("n/a (ONNX Runtime not run)")
                    continue
                r = ips[kiln_col] / ips[peer_col]
                cells.append("%.2fx" % r)
                if kiln_col != "Kiln on ORT's QDQ" and r < 1.0:
                    failures.append("%s b%d: %s / %s %.2fx < 1.0x" % (m, b, kiln_col, peer_col, r))
            ratios = " | ".join(cells)
            if b == 1:
                cells = " | ".join("%.1f / %.1f" % (med(m, b, c, "p50_us"), med(m, b, c, "p99_us")) for c in cols)
                lines.append("| %s | 1 | p50 / p99 latency (us); ratios of throughput | %s | %s |" % (m, cells, ratios))
            else:
                lines.append("| %s | %d | images/s | %s | %s |" % (m, b, " | ".join("%.0f" % ips[c] for c in cols), ratios))
    agree_lines = ["| model | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for m in models:
        agree_lines.append("| %s | %s |" % (m, " | ".join("%.2f%%" % (100 * agreement[(m, c)]) for c in cols)))
    verdict = ("not checked (ONNX Runtime not run)" if no_peers else
               "all met" if not failures else "MISSED: " + "; ".join(failures))
    quick = "\n\n(--quick: a smoke run, not a measurement)" if a.quick else ""
    report = ("%s\n\n%s\n\nTop-1 agreement with %s on %d standard-normal images (random weights: "
              "fidelity, not accuracy):\n\n%s\n\nKiln int8: quant::quantize (minmax, no accuracy control) of the "
              "imported graph; ORT int8 QDQ: quantize_static after quant_pre_process, per-channel s8 weights, u8 "
              "activations, minmax; both on the same %d calibration images.%s\n\ntargets: %s\n" % (
                  head, "\n".join(lines), reference, a.agreement_images, "\n".join(agree_lines), CALIB_IMAGES, quick, verdict))
    print(report)
    os.makedirs(a.out, exist_ok=True)
    md = os.path.join(a.out, "foreign_onnx_quick.md" if a.quick else "foreign_onnx.md")
    with open(md, "w") as f:
        f.write("# Foreign ONNX files (torch.onnx.export): Kiln against ONNX Runtime, fp32 and int8\n\n" + report)
    print("wrote " + md)
    return 0


def command(kiln, peer_py, engine, kind, model_file, calib, threads):
    if kind == "kiln":
        return [kiln, "--model_file", model_file, "--engine", engine, "--calib", calib]
    return [PEERS_PY, peer_py, "--engine", engine, "--model_file", model_file, "--threads", str(threads)]


if __name__ == "__main__":
    sys.exit(main())
