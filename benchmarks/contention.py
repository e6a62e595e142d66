"""Kiln's training speed when other processes are busy on the same machine.

For k = 0 .. (CPUs in this process's mask), k busy-loop processes started here hold k of the
cores while benchmarks/kiln_train_bench trains the Keras CNN (batch 32) under each setting:
  default      whatever Kiln chooses by itself (kiln::cpu::best_known_config(), under that load)
  1 thread     OMP_NUM_THREADS=1 (Kiln leaves a team smaller than the core count unbound)
  old default  one thread per core whatever the load, bound close, libgomp's spin count
               (Kiln's default before this benchmark)
plus any --variant NAME=VAR=VALUE,VAR=VALUE (extra environment on top of the default).
The settings alternate within each repetition (order reversed every other one) and the table
shows medians. The busy loops die with this script, also on Ctrl-C, SIGTERM or SIGKILL
(PR_SET_PDEATHSIG), and are never left behind.

Run: bazel run //benchmarks:contention -- [--quick] [--reps N] [--variant NAME=VAR=VALUE,...]
It prints a markdown table and writes it to benchmarks/results/contention.md.
"""
import argparse
import ctypes
import datetime
import os
import re
import signal
import statistics
import subprocess
import sys
import time

from bench_machine import cpu_info, flag_summary

HERE = os.path.dirname(os.path.abspath(__file__))
PR_SET_PDEATHSIG = 1
# Settings Kiln reads at start-up; cleared so that "default" means Kiln's own choice.
THREAD_VARS = ("OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "OMP_DYNAMIC",
               "GOMP_SPINCOUNT", "KILN_THREAD_CONFIG_APPLIED", "KILN_TOPOLOGY")


def find(candidates):
    for p in candidates:
        if os.path.exists(p):
            return p
    sys.exit("contention: cannot find any of " + ", ".join(candidates))


def die_with_parent():
    """preexec_fn: the child is killed when this script ends, however it ends."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def start_busy_loops(k):
    every_cpu = set(range(os.cpu_count() or 1))

    def setup():
        die_with_parent()
        os.sched_setaffinity(0, every_cpu)  # a load free to go anywhere, like other users' jobs

    return [subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"], preexec_fn=setup,
                             stdin=subprocess.DEVNULL) for _ in range(k)]


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def run_bench(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=die_with_parent, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError("%s failed:\n%s%s" % (" ".join(cmd), out.stdout, out.stderr))
    return out.stdout


def images_per_sec(stdout):
    m = re.search(r"images_per_sec=([0-9.]+)", stdout)
    if not m:
        raise RuntimeError("no images_per_sec in:\n" + stdout)
    return float(m.group(1))


def cpu_description():
    model, flags = cpu_info()
    return "%s (%s)" % (model, flag_summary(flags, [("AVX512-BF16", "avx512_bf16"), ("AMX", "amx_tile"),
                                                   ("AVX512-VNNI", "avx512_vnni"), ("AVX-VNNI", "avx_vnni")]))


def parse_variant(text):
    name, _, assignments = text.partition("=")
    env = {}
    for a in filter(None, assignments.split(",")):
        k, eq, v = a.partition("=")
        if not eq:
            sys.exit("contention: --variant wants NAME=VAR=VALUE[,VAR=VALUE...], got " + text)
        env[k] = v
    return name, env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=None, help="repetitions per setting (default 5, --quick 2)")
    ap.add_argument("--quick", action="store_true", help="fewer steps and repetitions, for a smoke run")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per run (default 300, --quick 60)")
    ap.add_argument("--max_k", type=int, default=None, help="most busy loops (default: the CPU count)")
    ap.add_argument("--variant", action="append", default=[], help="NAME=VAR=VALUE[,VAR=VALUE...]")
    ap.add_argument("--out", default=os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".") + "/benchmarks/results")
    a = ap.parse_args()
    reps = a.reps or (2 if a.quick else 5)
    steps = a.steps or (60 if a.quick else 300)
    warmup = 5 if a.quick else 20
    kiln = find([os.path.join(HERE, "kiln_train_bench"), "benchmarks/kiln_train_bench",
                 "bazel-bin/benchmarks/kiln_train_bench"])
    cpus = len(os.sched_getaffinity(0))
    max_k = cpus if a.max_k is None else min(a.max_k, cpus)

    base = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    first = run_bench([kiln, "--print_config"], base)
    m = re.search(r"(\d+) physical cores", first)
    cores = int(m.group(1)) if m else cpus
    # The full team exactly as Kiln ran it before it looked at the load: 300000 is libgomp's own
    # spin count when OMP_WAIT_POLICY is unset.
    settings = [("default", {}), ("1 thread", {"OMP_NUM_THREADS": "1"}),
                ("old default", {"OMP_NUM_THREADS": str(cores), "GOMP_SPINCOUNT": "300000"})]
    settings += [parse_variant(v) for v in a.variant]
    args = ["--model", a.model, "--batch", str(a.batch), "--steps", str(steps), "--warmup", str(warmup)]
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    print("%s; %d CPUs, %d physical cores; %s batch %d, %d steps, %d repetitions; load average %.2f"
          % (cpu_description(), cpus, cores, a.model, a.batch, steps, reps, load_before[0]), flush=True)

    # SIGTERM/SIGHUP end the script through the finally blocks below, like Ctrl-C does.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    results, chosen = {}, {}
    for k in range(max_k + 1):
        loops = start_busy_loops(k)
        try:
            time.sleep(0.5)  # let the scheduler spread the loops before anything samples the load
            for rep in range(reps):
                # What the default picks under this load (it samples for itself in each run too).
                cfg = run_bench([kiln, "--print_config"], base)
                threads = re.search(r"OMP_NUM_THREADS=(\d+)", cfg)
                idle = re.search(r"([0-9.]+) cores idle", cfg)
                chosen.setdefault(k, []).append((int(threads.group(1)) if threads else 0,
                                                 float(idle.group(1)) if idle else float("nan")))
                order = settings if rep % 2 == 0 else settings[::-1]
                for name, extra in order:
                    env = dict(base)
                    env.update(extra)
                    ips = images_per_sec(run_bench([kiln] + args, env))
                    results.setdefault((k, name), []).append(ips)
                    print("k=%d rep %d %-12s %8.0f img/s" % (k, rep + 1, name, ips), flush=True)
        finally:
            stop(loops)

    med = {key: statistics.median(v) for key, v in results.items()}
    names = [n for n, _ in settings]
    full = "old default"
    head = ["busy loops (k)", "idle cores seen at start", "default picked"] + ["%s img/s" % n for n in names]
    head += ["default / 1 thread", "default / %s" % full]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    missed = []
    for k in range(max_k + 1):
        picks = chosen[k]
        picked = sorted({t for t, _ in picks})
        idle = statistics.median(i for _, i in picks)
        d, one, allc = med[(k, "default")], med[(k, "1 thread")], med[(k, full)]
        row = [str(k), "%.1f" % idle, "/".join("%d" % t for t in picked) + (" thread" if picked == [1] else " threads")]
        row += ["%.0f" % med[(k, n)] for n in names]
        row += ["%.2fx" % (d / one), "%.2fx" % (d / allc)]
        lines.append("| " + " | ".join(row) + " |")
        # Equal settings differ by noise alone, so a ratio within 3% of 1 counts as level. Other
        # processes' load at k=0 counts as load too.
        if (k > 0 or idle < cores - 0.5) and d / one < 0.97:
            missed.append("k=%d: default %.2fx of 1 thread" % (k, d / one))
        if k == 0 and idle >= cores - 0.5 and d / allc < 0.98:
            missed.append("k=0 (quiet): default %.2fx of %s" % (d / allc, full))
    quiet = statistics.median(i for _, i in chosen[0]) >= cores - 0.5
    table = "\n".join(lines)
    notes = [
        "CPU: " + cpu_description(),
        "%d logical CPUs, %d physical cores; Keras CNN (%s), batch %d, %d timed steps after %d warm-up steps; "
        "medians of %d interleaved repetitions; %s" % (cpus, cores, a.model, a.batch, steps, warmup, reps,
                                                      started.strftime("%Y-%m-%d %H:%M UTC")),
        "Load from other processes: load average %.2f before, %.2f after; at k=0 the default saw %.1f of %d cores "
        "idle (%s)" % (load_before[0], os.getloadavg()[0], statistics.median(i for _, i in chosen[0]), cores,
                       "a quiet machine" if quiet else "NOT a quiet machine: k=0 is already contended"),
        "Settings: default = Kiln's choice (best_known_config: one thread per core left idle at start; a team on "
        "every core bound close with GOMP_SPINCOUNT=10000, fewer threads unbound); 1 thread = OMP_NUM_THREADS=1 "
        "(unbound, as Kiln leaves a team smaller than the core count); old default = %d threads bound close, libgomp's spin (OMP_NUM_THREADS=%d "
        "GOMP_SPINCOUNT=300000: Kiln's default before this benchmark)%s" % (
            cores, cores, "".join("; %s = %s" % (n, ",".join("%s=%s" % kv for kv in e.items()))
                                         for n, e in settings[3:])),
    ]
    verdict = ("targets: under load default >= 1 thread (within 3%%)%s: %s" % (
        ", quiet k=0 default >= 0.98x %s" % full if quiet else "; quiet-machine target not checked (k=0 not quiet)",
        "met" if not missed else "MISSED: " + "; ".join(missed)))
    text = "\n\n".join(["# Training under contention"] + notes + [table, verdict]) + "\n"
    print("\n" + text)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "contention.md")
    with open(path, "w") as f:
        f.write(text)
    print("wrote " + path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("contention: interrupted; busy loops stopped")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        sys.exit("contention: %s" % e)
