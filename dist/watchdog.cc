#include "dist/watchdog.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "dist/relaunch.h"
#include "dist/world.h"

namespace kiln::dist {
namespace {

using steady = std::chrono::steady_clock;

double initial_timeout() {
  const char* v = std::getenv("KILN_COLLECTIVE_TIMEOUT");
  if (!v || !*v) return 600;
  char* end = nullptr;
  double s = std::strtod(v, &end);
  if (end == v || *end || !std::isfinite(s) || s < 0) {
    std::fprintf(stderr, "kiln dist: ignoring KILN_COLLECTIVE_TIMEOUT='%s' (not a number of seconds >= 0)\n", v);
    return 600;
  }
  return s;
}

// Plain atomics, polled: arming a watch costs two stores, not a lock and a wake-up.
std::atomic<double> timeout_s{initial_timeout()};
std::atomic<int64_t> armed_at_ns{0};  // 0: no blocking call in progress
std::atomic<const char*> armed_call{nullptr};
std::once_flag thread_started;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

[[noreturn]] void fire(const char* call, double seconds) {
  record_failure(collective_timeout_message(call, seconds));
  std::fflush(nullptr);
  // No MPI call from this thread (the training thread is inside MPI): the process ends, and
  // the launcher ends the job because a rank exited with a non-zero status.
  _exit(1);
}

void watch_loop() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int64_t at = armed_at_ns.load(std::memory_order_acquire);
    const double limit = timeout_s.load(std::memory_order_relaxed);
    if (at == 0 || limit <= 0) continue;
    if ((now_ns() - at) / 1e9 > limit && armed_at_ns.load(std::memory_order_acquire) == at) {
      fire(armed_call.load(std::memory_order_acquire), limit);
    }
  }
}

}  // namespace

void set_collective_timeout(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) {
    throw std::invalid_argument("collective_timeout must be a finite number of seconds >= 0 (0 turns the watchdog "
                                "off), got " + std::to_string(seconds));
  }
  timeout_s.store(seconds, std::memory_order_relaxed);
}

double collective_timeout() { return timeout_s.load(std::memory_order_relaxed); }

CollectiveWatch::CollectiveWatch(const char* call) {
  if (timeout_s.load(std::memory_order_relaxed) <= 0) return;
  std::call_once(thread_started, [] { std::thread(watch_loop).detach(); });
  armed_call.store(call, std::memory_order_release);
  armed_at_ns.store(now_ns(), std::memory_order_release);
}

CollectiveWatch::~CollectiveWatch() { armed_at_ns.store(0, std::memory_order_release); }

std::string collective_timeout_message(const std::string& call, double seconds) {
  const int me = rank(), n = world_size();
  std::string peers;
  for (int r = 0; r < n; ++r) {
    if (r == me) continue;
    peers += std::string(peers.empty() ? "" : ", ") + "rank " + std::to_string(r) + " on host " + host_name(r);
  }
  char limit[32];
  std::snprintf(limit, sizeof limit, "%g", seconds);
  return call + " did not complete within " + limit + " s (.distributed.collective_timeout) on rank " +
         std::to_string(me) + " on host " + host_name(me) + ": no answer from " +
         (n == 2 ? peers : "one of " + peers) +
         ", which is unreachable (a network partition) or stopped outside MPI; ending the job";
}

}  // namespace kiln::dist
