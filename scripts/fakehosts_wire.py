#!/usr/bin/env python3
"""The data network of `scripts/fakehosts up N --wire`: a user-space hub joining the hosts'
eth0 (TAP devices), which delays and drops frames as `tc qdisc ... netem delay D loss L` would
on every host. For kernels without netem (sch_netem), such as this machine's.

Usage: fakehosts_wire.py CONFIG NAMESPACE...
  Attaches to the TAP device eth0 in each network namespace and forwards every frame from one
  host to all others (a hub), each copy dropped with probability L and delivered D later, in
  order. CONFIG holds "D_MS L_PERCENT" (e.g. "20 1"); it is read again whenever it changes,
  so delay and loss can be set while a job runs. CONFIG.stats receives "forwarded F dropped D"
  (frame copies) every 0.2 s while they change. Runs until killed.
"""
import ctypes
import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def attach(namespace):
    """An fd of the TAP device eth0 inside the namespace (TUNSETIFF looks the name up in the
    caller's namespace, so this process enters it first)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ns = os.open("/run/netns/" + namespace, os.O_RDONLY)
    if libc.setns(ns, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns into " + namespace)
    os.close(ns)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"eth0", IFF_TAP | IFF_NO_PI))
    return fd


def read_config(path, current):
    try:
        with open(path) as f:
            delay_ms, loss_pct = (float(x) for x in f.read().split()[:2])
        if delay_ms < 0 or not 0 <= loss_pct <= 100:
            raise ValueError
        return delay_ms / 1000.0, loss_pct / 100.0
    except (OSError, ValueError):
        return current


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    config, namespaces = sys.argv[1], sys.argv[2:]
    taps = [attach(ns) for ns in namespaces]
    delay, loss = read_config(config, (0.0, 0.0))
    seen = os.stat(config).st_mtime_ns if os.path.exists(config) else 0
    pending = []  # (due, sequence, fd, frame)
    sequence = 0
    forwarded = dropped = 0
    reported = (0, 0)
    next_check = time.monotonic() + 0.2
    while True:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, _, fd, frame = heapq.heappop(pending)
            try:
                os.write(fd, frame)
            except OSError:  # the host's link is down (a partition): the frame is lost
                pass
        if now >= next_check:
            next_check = now + 0.2
            try:
                mtime = os.stat(config).st_mtime_ns
            except OSError:
                mtime = seen
            if mtime != seen:
                seen = mtime
                delay, loss = read_config(config, (delay, loss))
            if (forwarded, dropped) != reported:
                reported = (forwarded, dropped)
                with open(config + ".stats.new", "w") as f:
                    f.write("forwarded %d dropped %d\n" % reported)
                os.replace(config + ".stats.new", config + ".stats")
        timeout = max(0.0, min(next_check, pending[0][0] if pending else next_check) - time.monotonic())
        ready, _, _ = select.select(taps, [], [], timeout)
        for src in ready:
            for _ in range(64):
                try:
                    frame = os.read(src, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    break
                due = time.monotonic() + delay
                for dst in taps:
                    if dst == src:
                        continue
                    if loss > 0 and random.random() < loss:
                        dropped += 1
                        continue
                    forwarded += 1
                    if delay == 0:
                        try:
                            os.write(dst, frame)
                        except OSError:
                            pass
                        continue
                    sequence += 1
                    heapq.heappush(pending, (due, sequence, dst, frame))


if __name__ == "__main__":
    main()
