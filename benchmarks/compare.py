"""Kiln against the strongest CPU training peers, measured side by side in one run (issue 25).

For every workload (compare_workloads.py) and dtype (f32, bf16 mixed precision), each engine
runs in its own process, REPS times (the order rotates every repetition), with the same thread
count:
  Kiln            benchmarks/kiln_train_bench;
  PyTorch eager   torch_train_bench.py --mode eager (torch 2.8, fused Adam);
  IPEX            torch_train_bench.py --mode ipex (intel_extension_for_pytorch.optimize);
  torch.compile   torch_train_bench.py --mode compile (inductor; compile time excluded from the
                  throughput and reported in its own table);
  LibTorch        libtorch_train_bench (C++, no Python) with torch::optim::Adam;
  LibTorch fused  the same with ATen's fused Adam (at::_fused_adam_).
The peers run from .venv-peers (`bash scripts/setup --peers`); the LibTorch twin is built with
g++ against that venv's wheel by build_libtorch_bench.sh. A peer that does not install, import
or build is left out and the report says which and why.

Tables: median images/s per engine with Kiln's ratio to each peer, the best peer and the target
(Kiln >= 1.3x the best peer on every row); then percent of peak: the machine's peak FLOP/s is
measured once per run (peak_flops: FMA and vdpbf16ps register loops, raw oneDNN matmul), each
workload's FLOPs per step are counted from its graph (flop_count.h, printed by kiln_train_bench),
and achieved FLOP/s and % of peak are shown for Kiln and the best peer (target: ResNet-18 f32
>= 60% of the f32 FMA peak; when missed, Kiln's step is shown by op from its profiled pass).
The header names the CPU, its flags, threads, every peer's version and the date.

Run: bazel run //benchmarks:compare -- [--reps 3] [--quick] [--models mlp,cnn] [--peers eager,ipex,...]
                                       [--kiln_optimize] [--kiln_conv_algorithm direct|winograd|fastest]
                                       [--out DIR] [--name NAME]
Results go to compare.md / compare.png, or compare_<options>.md / .png when Kiln runs with
non-default options (kiln::optimize, kiln::set_conv_algorithm), or with --quick; --name NAME
writes NAME.md / NAME.png instead (a run of some workloads, say, beside the full table).
"""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys

from bench_machine import cpu_info, kiln_thread_env
from compare_workloads import WORKLOADS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
PEERS_PY = os.path.join(ROOT, ".venv-peers", "bin", "python")
SETUP_HINT = "run `bash scripts/setup --peers` (it installs the pinned peers into .venv-peers)"
DTYPES = ("f32", "bf16")
TARGET_VS_BEST = 1.3
TARGET_RESNET_PEAK_PCT = 60.0

# (key, column label)
PEERS = [("eager", "PyTorch eager"), ("ipex", "IPEX"), ("compile", "torch.compile"),
         ("libtorch", "LibTorch"), ("libtorch_fused", "LibTorch fused Adam")]


def find(path_candidates):
    for p in path_candidates:
        if os.path.exists(p):
            return p
    sys.exit("compare: cannot find any of " + ", ".join(path_candidates))


def parse(out):
    return dict(re.findall(r"(\w+)=(\S+)", out))


def run(cmd, env):
    """(parsed key=value output, None) or (None, why it failed)."""
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    values = parse(out.stdout)
    if out.returncode != 0 or "images_per_sec" not in values:
        lines = (out.stderr.strip() or out.stdout.strip()).splitlines() or ["no output"]
        # A Python traceback ends with the error; a C++ program's message comes first.
        line = lines[-1] if "Traceback" in out.stderr else lines[0]
        return None, "exit %d: %s" % (out.returncode, line[:200])
    values["_stdout"] = out.stdout
    return values, None


def probe_peers(wanted, torch_env):
    """{peer key: None if usable, else why not}, and the peers' version strings."""
    status, versions = {}, {}
    if not os.path.exists(PEERS_PY):
        why = "%s missing: %s" % (PEERS_PY, SETUP_HINT)
        return {k: why for k in wanted}, versions
    code = ("import torch,re;print('torch', torch.__version__);"
            "m=re.search(r'MKL-DNN v([0-9.]+)', torch.__config__.show());print('onednn', m.group(1) if m else '?')")
    r = subprocess.run([PEERS_PY, "-c", code], env=torch_env, capture_output=True, text=True)
    if r.returncode != 0:
        why = "torch does not import in .venv-peers (%s): %s" % (
            (r.stderr.strip().splitlines() or ["?"])[-1], SETUP_HINT)
        return {k: why for k in wanted}, versions
    versions.update(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    for k in wanted:
        status[k] = None
    if "ipex" in wanted:
        r = subprocess.run([PEERS_PY, "-c", "import intel_extension_for_pytorch as i;print(i.__version__)"],
                           env=torch_env, capture_output=True, text=True)
        if r.returncode != 0:
            status["ipex"] = "intel_extension_for_pytorch does not import (%s): %s" % (
                (r.stderr.strip().splitlines() or ["?"])[-1], SETUP_HINT)
        else:
            versions["ipex"] = r.stdout.strip().splitlines()[-1]
    if "compile" in wanted and subprocess.run(["sh", "-c", "command -v g++ || command -v gcc"],
                                              capture_output=True).returncode != 0:
        status["compile"] = "torch.compile (inductor) needs a C++ compiler on PATH"
    if {"libtorch", "libtorch_fused"} & set(wanted):
        binary, why = libtorch_binary()
        for k in ("libtorch", "libtorch_fused"):
            if k in wanted:
                status[k] = why
        if binary:
            versions["libtorch_bin"] = binary
    return status, versions


def libtorch_binary():
    """(path, None), building it when missing or older than its source; or (None, why)."""
    src_root = ROOT if os.path.exists(os.path.join(ROOT, "benchmarks", "libtorch_train_bench.cc")) else None
    if src_root is None:
        return None, "benchmarks/libtorch_train_bench.cc not found under %s" % ROOT
    binary = os.path.join(src_root, "out", "libtorch_train_bench")
    sources = [os.path.join(src_root, "benchmarks", f) for f in ("libtorch_train_bench.cc", "libtorch_mobilenet_v3.h")]
    newest_source = max(os.path.getmtime(s) for s in sources if os.path.exists(s))
    if not os.path.exists(binary) or os.path.getmtime(binary) < newest_source:
        print("compare: building the LibTorch twin (benchmarks/build_libtorch_bench.sh, about 2 minutes)", flush=True)
        r = subprocess.run(["bash", os.path.join(src_root, "benchmarks", "build_libtorch_bench.sh"), binary],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, "build_libtorch_bench.sh failed: %s" % ((r.stderr.strip().splitlines() or ["?"])[-1][:200])
    return binary, None


def measure_peak(peak_bin, env, seconds):
    r = subprocess.run([peak_bin, "--seconds", str(seconds)], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("compare: peak_flops failed:\n%s%s" % (r.stdout, r.stderr))
    return {name: float(v) for name, v in re.findall(r"peak (\w+) gflops=([0-9.]+)", r.stdout)}


def machine_header(threads):
    model, flags = cpu_info()
    yn = lambda f: "yes" if f in flags else "no"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "CPU: %s; AVX-512: %s, AVX512-VNNI: %s, AVX512-BF16: %s, AMX: %s; threads: %s; date: %s" % (
        model, yn("avx512f"), yn("avx512_vnni"), yn("avx512_bf16"), yn("amx_tile"), threads, date)


def fmt_ips(v):
    """Images/s with the digits that matter: ResNet-18 runs at tens of images/s, the MLP at tens of thousands."""
    return "%.1f" % v if v < 100 else "%.0f" % v


def peak_for(dtype, peak):
    """(peak GFLOP/s of the dtype's best FMA-class instruction, its name)."""
    if dtype == "bf16" and "dpbf16_avx512" in peak:
        return peak["dpbf16_avx512"], "vdpbf16ps"
    if "fma_f32_avx512" in peak:
        return peak["fma_f32_avx512"], "AVX-512 FMA"
    return peak.get("fma_f32_avx2", 0.0), "AVX2 FMA"


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "n/a"


def profile_by_op(stdout, top=8):
    """Kiln's profiled pass as [(op kind, ms per step, calls)], largest first, and the wall ms."""
    wall = re.search(r"profile wall_ms=([0-9.]+)", stdout)
    line = re.search(r"profile_by_kind (.*)", stdout)
    if not wall or not line:
        return [], 0.0
    rows = [(k.strip(), float(ms), float(n)) for k, ms, n in re.findall(r"([^,]+?) ([0-9.]+) ms/([0-9.]+)", line.group(1))]
    return sorted(rows, key=lambda r: -r[1])[:top], float(wall.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repetition, a tenth of the steps: a smoke run")
    ap.add_argument("--models", default="", help="comma-separated subset of the workloads' models (default: all)")
    ap.add_argument("--peers", default=",".join(k for k, _ in PEERS),
                    help="comma-separated subset of " + ",".join(k for k, _ in PEERS))
    ap.add_argument("--kiln_optimize", action="store_true", help="run Kiln's side after kiln::optimize (packed conv kernels)")
    ap.add_argument("--kiln_conv_algorithm", default="direct", choices=["direct", "winograd", "fastest"],
                    help="kiln::set_conv_algorithm for Kiln's side (PyTorch has no such choice on CPU)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--name", default="", help="the results' file name without .md / .png (default: compare[_options])")
    a = ap.parse_args()
    if a.quick:
        a.reps = 1
    workloads = list(WORKLOADS)
    if a.models:
        wanted = set(a.models.split(","))
        workloads = [w for w in workloads if w.model in wanted]
        if not workloads:
            sys.exit("compare: --models %s names none of %s" % (a.models, ", ".join(sorted({w.model for w in WORKLOADS}))))
    peer_keys = [p for p in a.peers.split(",") if p]
    unknown = [p for p in peer_keys if p not in dict(PEERS)]
    if unknown:
        sys.exit("compare: unknown peer(s) %s (known: %s)" % (", ".join(unknown), ", ".join(k for k, _ in PEERS)))

    kiln_bin = find([os.path.join(HERE, "kiln_train_bench"), "bazel-bin/benchmarks/kiln_train_bench"])
    peak_bin = find([os.path.join(HERE, "peak_flops"), "bazel-bin/benchmarks/peak_flops"])
    torch_py = find([os.path.join(HERE, "torch_train_bench.py"), "benchmarks/torch_train_bench.py"])
    env = kiln_thread_env(kiln_bin)[0]
    threads = env.get("OMP_NUM_THREADS", "?")
    torch_env = dict(env)
    # Same thread count; the peers keep their own OpenMP defaults (unbound threads, their
    # runtime's spin): binding made PyTorch's ResNet-18 step about 6% slower on the dev machine.
    for k in ("OMP_PROC_BIND", "GOMP_SPINCOUNT", "OMP_PLACES"):
        torch_env.pop(k, None)

    status, versions = probe_peers(peer_keys, torch_env)
    active = [(k, label) for k, label in PEERS if k in peer_keys and status.get(k) is None]
    missing = ["%s (%s)" % (label, status[k]) for k, label in PEERS if k in peer_keys and status.get(k)]
    header = machine_header(threads)
    setup = ("threads: %s for every engine (Kiln: OMP_PROC_BIND=%s OMP_PLACES=%s; peers unbound); Kiln: oneDNN 2.6 "
             "(Debian), g++ -O2; peers: PyTorch %s (oneDNN %s, PyPI wheel), IPEX %s, LibTorch = that wheel's "
             "libtorch_cpu from g++ -O2" % (threads, env.get("OMP_PROC_BIND"), env.get("OMP_PLACES"),
                                             versions.get("torch", "n/a"), versions.get("onednn", "n/a"),
                                             versions.get("ipex", "n/a")))
    if a.kiln_optimize:
        setup += "; Kiln's side runs after kiln::optimize (conv kernels packed)"
    if a.kiln_conv_algorithm != "direct":
        setup += "; Kiln's side runs with set_conv_algorithm(%s)" % a.kiln_conv_algorithm
    options = (["optimize"] if a.kiln_optimize else []) + (
        [a.kiln_conv_algorithm] if a.kiln_conv_algorithm != "direct" else []) + (["quick"] if a.quick else [])
    stem = a.name or "compare" + "".join("_" + o for o in options)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", stem):
        sys.exit("compare: --name %r must be a plain file name (letters, digits, _ . -)" % stem)
    print(header)
    print(setup)
    print("peers not run: " + ("; ".join(missing) if missing else "none"), flush=True)

    peak = measure_peak(peak_bin, env, 0.1 if a.quick else 0.5)
    peak_line = "measured peak (GFLOP/s, %s threads): %s" % (
        threads, ", ".join("%s %.0f" % (k, v) for k, v in peak.items()))
    print(peak_line, flush=True)

    load_start = load_average()
    results, failures_run, kiln_out, flops, compile_s = {}, {}, {}, {}, {}
    for rep in range(a.reps):
        for w in workloads:
            steps = max(2, w.steps // 10) if a.quick else w.steps
            for dtype in DTYPES:
                args = ["--model", w.model, "--dtype", dtype, "--batch", str(w.batch), "--steps", str(steps)]
                kiln_args = args + ["--warmup", "3"] + (["--optimize", "1"] if a.kiln_optimize else []) + (
                    ["--conv_algorithm", a.kiln_conv_algorithm] if a.kiln_conv_algorithm != "direct" else [])
                jobs = [("kiln", [kiln_bin] + kiln_args, env)]
                for k, _ in active:
                    if k in ("libtorch", "libtorch_fused"):
                        cmd = [versions["libtorch_bin"]] + args + ["--warmup", "3", "--threads", threads,
                                                                   "--adam", "fused" if k == "libtorch_fused" else "plain"]
                    else:
                        cmd = [PEERS_PY, torch_py] + args + ["--warmup", "3", "--threads", threads, "--mode", k]
                    jobs.append((k, cmd, torch_env))
                shift = rep % len(jobs)
                for k, cmd, e in jobs[shift:] + jobs[:shift]:
                    key = (w.model, w.batch, dtype)
                    if (key, k) in failures_run:
                        continue
                    values, why = run(cmd, e)
                    if values is None:
                        if k == "kiln":
                            sys.exit("compare: %s failed: %s" % (" ".join(cmd), why))
                        failures_run[(key, k)] = why
                        print("compare: %s on %s b%d %s: %s" % (k, w.model, w.batch, dtype, why), flush=True)
                        continue
                    results.setdefault((key, k), []).append(float(values["images_per_sec"]))
                    if k == "kiln":
                        kiln_out[key] = values["_stdout"]
                        flops[key] = float(values["flops_per_step"])
                    if "compile_s" in values:
                        compile_s.setdefault(key, []).append(float(values["compile_s"]))
        print("repetition %d/%d done" % (rep + 1, a.reps), flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    cols = [("kiln", "Kiln")] + active
    head_cells = ["model", "batch", "dtype", "Kiln img/s"] + [c for _, label in active for c in (
        "%s img/s" % label, "Kiln / it")] + ["best peer", "Kiln / best", "target >= %.1fx" % TARGET_VS_BEST]
    lines = ["| " + " | ".join(head_cells) + " |", "|" + "---|" * len(head_cells)]
    peak_lines = ["| model | batch | dtype | GFLOP / step | peak used (GFLOP/s) | Kiln GFLOP/s | Kiln % of peak "
                  "| Kiln % of oneDNN matmul | best peer | its GFLOP/s | its % of peak | Kiln framework overhead % |",
                  "|" + "---|" * 12]
    verdicts, best_rows = [], {}
    for w in workloads:
        for dtype in DTYPES:
            key = (w.model, w.batch, dtype)
            k_ips = med[(key, "kiln")]
            cells, best = [], None
            for p, label in active:
                ips = med.get((key, p))
                if ips is None:
                    cells.append("n/a | n/a")
                    continue
                cells.append("%s | %.2fx" % (fmt_ips(ips), k_ips / ips))
                if best is None or ips > best[1]:
                    best = (label, ips)
            if best:
                ratio = k_ips / best[1]
                met = ratio >= TARGET_VS_BEST
                verdicts.append("%s b%d %s: Kiln / %s %.2fx (%s)" % (w.model, w.batch, dtype, best[0], ratio,
                                                                     "met" if met else "missed"))
                tail = "%s | %.2fx | %s" % (best[0], ratio, "met" if met else "**missed**")
            else:
                tail = "n/a | n/a | no peer ran"
            lines.append("| " + " | ".join([w.model, str(w.batch), dtype, fmt_ips(k_ips)] + cells + [tail]) + " |")
            best_rows[key] = best

            gflop = flops[key] / 1e9
            pk, pk_name = peak_for(dtype, peak)
            mm = peak.get("onednn_bf16" if dtype == "bf16" else "onednn_f32", 0.0)
            k_gflops = gflop * k_ips / w.batch
            prof = re.search(r"overhead_pct=([0-9.-]+)", kiln_out[key])
            if best:
                b_gflops = gflop * best[1] / w.batch
                peer_cells = "%s | %.1f | %.1f%%" % (best[0], b_gflops, 100 * b_gflops / pk if pk else 0)
            else:
                peer_cells = "n/a | n/a | n/a"
            peak_lines.append("| %s | %d | %s | %.3f | %.0f (%s) | %.1f | %.1f%% | %s | %s | %s |" % (
                w.model, w.batch, dtype, gflop, pk, pk_name, k_gflops, 100 * k_gflops / pk if pk else 0,
                "%.1f%%" % (100 * k_gflops / mm) if mm else "n/a", peer_cells, prof.group(1) if prof else "n/a"))
            if w.model == "resnet18" and dtype == "f32" and pk:
                pct = 100 * k_gflops / pk
                verdicts.append("resnet18 b%d f32: %.1f%% of the measured f32 peak (target %.0f%%: %s)" % (
                    w.batch, pct, TARGET_RESNET_PEAK_PCT, "met" if pct >= TARGET_RESNET_PEAK_PCT else "missed"))

    table = "\n".join(lines)
    peak_table = "\n".join(peak_lines)
    compile_lines = []
    if compile_s:
        compile_lines = ["| model | batch | dtype | torch.compile time (s), first run / median |", "|---|---|---|---|"]
        for (m, b, d), v in compile_s.items():
            compile_lines.append("| %s | %d | %s | %.1f / %.1f |" % (m, b, d, v[0], statistics.median(v)))
    compile_table = "\n".join(compile_lines)
    # Where Kiln's step goes on every row that misses a target (and ResNet-18 f32, whose % of peak
    # is a target of its own): Kiln's profiled pass by op, from the same run as the ratios.
    profiles = []
    for w in workloads:
        for dtype in DTYPES:
            key = (w.model, w.batch, dtype)
            best = best_rows.get(key)
            missed = best is not None and med[(key, "kiln")] / best[1] < TARGET_VS_BEST
            if key not in kiln_out or not (missed or (w.model == "resnet18" and dtype == "f32")):
                continue
            rows, wall = profile_by_op(kiln_out[key])
            if rows:
                profiles.append("Kiln's %s b%d %s step by op (profiled pass, ms per step of %.1f ms wall):\n\n"
                                "| op | ms / step | share of step | calls / step |\n|---|---|---|---|\n" %
                                (w.model, w.batch, dtype, wall) +
                                "\n".join("| %s | %.2f | %.1f%% | %.0f |" % (k, ms, 100 * ms / wall, n)
                                          for k, ms, n in rows))
    profile_text = "\n\n".join(profiles)
    run_failures = "\n".join("- %s on %s b%d %s: %s" % (p, m, b, d, why) for ((m, b, d), p), why in failures_run.items())
    legend = ("Kiln / it: Kiln's images/s over that peer's (above 1: Kiln faster). GFLOP / step: the multiply-adds "
              "of matmul, linear, conv, attention (q k^T and the weighted sum) and the LSTM/GRU/RNN input and state "
              "products (x2) in the forward pass and the gradients a step computes, counted from "
              "the model's graph (benchmarks/flop_count.h); % of peak against the measured peak of the dtype's "
              "instruction (f32: FMA, bf16: vdpbf16ps); Kiln framework overhead: the share of a step outside "
              "oneDNN primitives and Kiln's kernels (kiln::onednn::profiler pass).")
    parts = [header, "%s; %d repetition(s), medians" % (setup, a.reps),
             "peers not run: " + ("; ".join(missing) if missing else "none"),
             "load average (1 min): %s at the start, %s at the end (other processes share the cores when "
             "these are well above 0)" % (load_start, load_average()), peak_line, table, peak_table, legend,
             compile_table, profile_text,
             "peer runs that failed:\n" + run_failures if run_failures else "",
             "(--quick: a smoke run, not a measurement)" if a.quick else "",
             "targets:\n" + "\n".join("- " + v for v in verdicts)]
    report = "\n\n".join(p for p in parts if p) + "\n"
    print(report)
    os.makedirs(a.out, exist_ok=True)
    md = os.path.join(a.out, stem + ".md")
    with open(md, "w") as f:
        f.write(report)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (python3-matplotlib): no chart written; wrote %s" % md)
        return 0
    groups = ["%s b%d %s" % (w.model, w.batch, d) for w in workloads for d in DTYPES]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(cols)
    for i, (k, label) in enumerate(cols):
        vals = []
        for w in workloads:
            for d in DTYPES:
                key = (w.model, w.batch, d)
                best = best_rows.get(key)
                vals.append(med.get((key, k), 0) / best[1] if best else 0)
        ax.bar([g + i * width for g in range(len(groups))], vals, width, label=label)
    ax.set_xticks([g + width * (len(cols) - 1) / 2 for g in range(len(groups))])
    ax.set_xticklabels(groups, fontsize=7, rotation=20)
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.axhline(TARGET_VS_BEST, color="red", linewidth=0.6, linestyle="--")
    ax.set_ylabel("training throughput / best peer")
    ax.set_title("Training throughput relative to the best peer (median of %d)\n%s" % (a.reps, header), fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = os.path.join(a.out, stem + ".png")
    fig.savefig(png, dpi=110)
    print("wrote %s and %s" % (png, md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
