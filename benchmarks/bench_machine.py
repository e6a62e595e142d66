"""What the benchmark drivers share: the CPU they run on, and Kiln's thread settings."""
import os
import re
import subprocess
import sys


def cpu_info():
    """(model name, set of CPUID flags) from /proc/cpuinfo."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def flag_summary(flags, wanted):
    """'AVX512-BF16 yes, AMX no, ...' for (label, cpuid flag) pairs."""
    return ", ".join("%s %s" % (label, "yes" if flag in flags else "no") for label, flag in wanted)


def kiln_thread_env(kiln_bin):
    """The environment with the OpenMP settings kiln::cpu::best_known_config() picks (spin count
    included), fixed once so that every run of a driver uses the same ones; and the binary's
    printed configuration."""
    out = subprocess.run([kiln_bin, "--print_config"], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    for k, v in re.findall(r"\b(G?OMP_[A-Z_]+)=(\S+)", out):
        env.setdefault(k, v)
    env["KILN_THREAD_CONFIG_APPLIED"] = "1"
    return env, out.strip()


def first_existing(candidates, driver):
    """The first path of `candidates` that exists; else exits naming them and the driver."""
    for p in candidates:
        if os.path.exists(p):
            return p
    sys.exit("%s: cannot find any of %s" % (driver, ", ".join(candidates)))


def run_tool(cmd, env, what, driver):
    """Runs cmd; its stdout's key=value pairs as a dict. A failure exits with `what`, the command
    and the end of its output."""
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("%s: %s failed (%s):\n%s%s" % (driver, what, " ".join(cmd), r.stdout[-2000:], r.stderr[-3000:]))
    return dict(re.findall(r"(\w+)=(\S+)", r.stdout))
