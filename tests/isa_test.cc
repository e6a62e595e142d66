#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include "tensor/onednn/isa.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/threading.h"
#include "tensor/ops/ops.h"

namespace kiln {
namespace {

std::string run_probe(const std::string& cap) {
  std::string cmd = "tests/isa_probe " + cap + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return "";
  std::string out;
  std::array<char, 512> buf;
  while (fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  return out;
}

std::string field(const std::string& out, const std::string& name) {
  auto p = out.find(name + "=");
  if (p == std::string::npos) return "";
  p += name.size() + 1;
  return out.substr(p, out.find_first_of(" \n", p) - p);
}

TEST(Isa, DetectionAndReport) {
  cpu::Isa detected = cpu::detected_isa();
  EXPECT_TRUE(cpu::isa_available(cpu::Isa::sse41));
  EXPECT_TRUE(cpu::isa_available(detected));
  std::string report = cpu::isa_report();
  EXPECT_NE(report.find(cpu::isa_name(detected)), std::string::npos) << report;
  if (!cpu::isa_available(cpu::Isa::amx)) {
    EXPECT_NE(report.find("unavailable"), std::string::npos) << report;
  }
  EXPECT_THROW(cpu::isa_from_name("avx9000"), std::invalid_argument);
}

TEST(Isa, CapChangesTheChosenImplementation) {
  if (!cpu::isa_available(cpu::Isa::avx512_core_bf16)) {
    GTEST_SKIP() << "needs AVX512-BF16 to compare caps; this CPU has " << cpu::isa_name(cpu::detected_isa());
  }
  std::string capped = run_probe("avx512_core");
  std::string bf16 = run_probe("avx512_core_bf16");
  std::string avx2 = run_probe("avx2");
  SCOPED_TRACE("avx512_core cap: " + capped + "avx512_core_bf16 cap: " + bf16 + "avx2 cap: " + avx2);
  EXPECT_EQ(field(capped, "effective"), "avx512_core");
  EXPECT_EQ(field(bf16, "effective"), "avx512_core_bf16");
  EXPECT_EQ(field(avx2, "effective"), "avx2");
  // bf16 matmul uses native bf16 instructions only when the cap allows them.
  EXPECT_NE(field(bf16, "bf16").find("avx512_core_bf16"), std::string::npos);
  EXPECT_EQ(field(capped, "bf16").find("avx512_core_bf16"), std::string::npos);
  EXPECT_NE(field(capped, "bf16"), field(bf16, "bf16"));
  EXPECT_EQ(field(avx2, "f32").find("avx512"), std::string::npos);
  EXPECT_EQ(field(bf16, "late_cap"), "refused");
}

// Runs body with OMP_NUM_THREADS set to value (unset for nullptr), then restores it.
template <typename Body>
void with_omp_num_threads(const char* value, const Body& body) {
  const char* was = std::getenv("OMP_NUM_THREADS");
  std::string saved = was ? was : "";
  value ? setenv("OMP_NUM_THREADS", value, 1) : unsetenv("OMP_NUM_THREADS");
  body();
  was ? setenv("OMP_NUM_THREADS", saved.c_str(), 1) : unsetenv("OMP_NUM_THREADS");
}

TEST(ThreadConfig, OneThreadPerPhysicalCoreBoundClose) {
  // Without sampling the load: one thread per core (under a CPU quota, at most the quota).
  cpu::ThreadConfig c;
  with_omp_num_threads(nullptr, [&] { c = cpu::best_known_config({.sample_ms = 0}); });
  EXPECT_GE(c.physical_cores, 1);
  EXPECT_LE(c.physical_cores, c.logical_cpus);
  EXPECT_LT(c.idle_cores, 0);
  if (c.cpu_quota == 0) {
    EXPECT_EQ(c.omp_num_threads, c.physical_cores);
  }
  auto env = c.env();
  // A team spins briefly before sleeping; one thread has no team and keeps libgomp's default.
  ASSERT_EQ(env.size(), c.omp_num_threads > 1 ? 4u : 3u);
  EXPECT_EQ(env[0], (std::pair<std::string, std::string>{"OMP_NUM_THREADS", std::to_string(c.omp_num_threads)}));
  EXPECT_EQ(env[1].second, c.omp_num_threads == c.physical_cores ? "close" : "false");  // unsampled: unbound
  EXPECT_EQ(env[2].second, "cores");
  if (env.size() == 4) {
    EXPECT_EQ(env[3].first, "GOMP_SPINCOUNT");
  }
  EXPECT_NE(c.describe().find("OMP_PLACES="), std::string::npos);
}

// The user's OMP_NUM_THREADS is the team; a team smaller (or larger) than the core count runs
// unbound, so that several one-thread processes do not all sit on core 0.
TEST(ThreadConfig, TheUsersThreadCountIsTheTeamAndUnbound) {
  cpu::ThreadConfig one, many;
  with_omp_num_threads("1", [&] { one = cpu::best_known_config({.sample_ms = 0}); });
  with_omp_num_threads("64", [&] { many = cpu::best_known_config({.sample_ms = 0}); });
  EXPECT_EQ(one.omp_num_threads, 1);
  EXPECT_TRUE(one.gomp_spincount.empty());
  EXPECT_EQ(many.omp_num_threads, 64);
  if (one.physical_cores > 1) EXPECT_EQ(one.omp_proc_bind, "false");
  if (many.physical_cores != 64) EXPECT_EQ(many.omp_proc_bind, "false");
}

TEST(ThreadConfig, NoMoreThreadsThanIdleCores) {
  // Tests run on machines other processes keep busy, so only the bounds are fixed here; the
  // choice itself is measured by benchmarks/contention.
  cpu::ThreadConfig c;
  with_omp_num_threads(nullptr, [&] { c = cpu::best_known_config(); });
  EXPECT_GE(c.idle_cores, 0);
  EXPECT_LE(c.idle_cores, c.physical_cores + 0.01);
  EXPECT_GE(c.omp_num_threads, 1);
  EXPECT_LE(c.omp_num_threads, c.physical_cores);
  EXPECT_LE(c.omp_num_threads, std::max(1.0, c.idle_cores + 0.5));
  // Fewer threads than cores are left to the scheduler, so that several such processes spread out.
  if (c.omp_num_threads < c.physical_cores) {
    EXPECT_EQ(c.omp_proc_bind, "false");
  }
  EXPECT_NE(c.describe().find("idle at start"), std::string::npos) << c.describe();
}

TEST(ThreadConfig, ChoiceSurvivesTheReExec) {
  // apply_best_known_config re-executes the program with what it measured in KILN_TOPOLOGY
  // (physical:logical:threads:idle:quota); older values carry only the topology.
  setenv("KILN_TOPOLOGY", "4:8:1:0.80:0.00", 1);
  cpu::ThreadConfig busy = cpu::best_known_config();
  setenv("KILN_TOPOLOGY", "4:8", 1);
  cpu::ThreadConfig old = cpu::best_known_config();
  unsetenv("KILN_TOPOLOGY");
  EXPECT_EQ(busy.physical_cores, 4);
  EXPECT_EQ(busy.omp_num_threads, 1);
  EXPECT_EQ(busy.omp_proc_bind, "false");
  EXPECT_TRUE(busy.gomp_spincount.empty());
  EXPECT_NEAR(busy.idle_cores, 0.8, 1e-9);
  EXPECT_EQ(old.omp_num_threads, 4);
  EXPECT_EQ(old.omp_proc_bind, "close");
  EXPECT_FALSE(old.gomp_spincount.empty());
}

TEST(PrimitiveCache, SteadyStateCreatesNoPrimitives) {
  Tensor a = Tensor::ones({16, 32}), b = Tensor::ones({32, 8});
  matmul(relu(a), b);
  auto before = onednn::primitive_cache_stats();
  for (int i = 0; i < 5; ++i) matmul(relu(a), b);
  auto after = onednn::primitive_cache_stats();
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.hits - before.hits, 5u);  // only matmul runs a oneDNN primitive; relu is a Kiln loop (NaN)
  EXPECT_FALSE(cpu::impl_log().empty());
  EXPECT_FALSE(cpu::last_impl("matmul").empty());
}

}  // namespace
}  // namespace kiln
