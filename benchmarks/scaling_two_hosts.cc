#include "benchmarks/scaling_two_hosts.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "benchmarks/scaling_steps.h"
#include "benchmarks/workloads.h"
#include "dist/dist.h"

namespace kiln::bench {
namespace {

struct Model {
  std::string name;
  int64_t batch;
};
const std::vector<Model> models = {{"cnn", 64}, {"resnet18", 32}};

// A link shape: netem's rate and 0.2 ms delay where the kernel has netem, else tbf's rate alone
// (the report lists which was applied).
struct Link {
  std::string name, netem, tbf;  // tc qdisc arguments; both empty: the plain veth
};
const std::vector<Link> links = {
    {"veth, unshaped", "", ""},
    {"10 Gbit/s", "netem delay 0.2ms rate 10gbit limit 100000", "tbf rate 10gbit burst 4mb latency 20ms"},
    {"1 Gbit/s", "netem delay 0.2ms rate 1gbit limit 100000", "tbf rate 1gbit burst 512kb latency 50ms"},
};

std::string run_output(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

std::string must(const std::string& cmd) {
  int status = 0;
  std::string out = run_output(cmd, &status);
  if (status != 0) throw std::runtime_error("'" + cmd + "' failed: " + out);
  return out;
}

// The emulated hosts, removed however this process ends (fakehosts' watcher covers a crash).
class Hosts {
 public:
  explicit Hosts(std::string fakehosts) : tool_(std::move(fakehosts)) {
    std::string out = must(tool_ + " up 2 --owner " + std::to_string(getpid()));
    dir_ = out.substr(0, out.find('\n'));
  }
  ~Hosts() {
    int status = 0;
    run_output(tool_ + " down " + dir_, &status);
  }
  const std::string& dir() const { return dir_; }
  // Applies the shape to both hosts' data links; returns how it was applied.
  std::string shape(const Link& link) {
    int status = 0;
    if (link.netem.empty()) {
      for (const char* h : {"h1", "h2"}) must(tool_ + " tc " + dir_ + " " + h + " pfifo limit 10000");
      return "no qdisc shaping";
    }
    for (const char* h : {"h1", "h2"}) run_output(tool_ + " tc " + dir_ + " " + h + " " + link.netem, &status);
    if (status == 0) return "tc " + link.netem;
    for (const char* h : {"h1", "h2"}) must(tool_ + " tc " + dir_ + " " + h + " " + link.tbf);
    return "tc " + link.tbf + " (no netem in this kernel: rate only, no added delay)";
  }

 private:
  std::string tool_, dir_;
};

std::string self_exe() {
  char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) throw std::runtime_error("cannot find this program's path (/proc/self/exe)");
  exe[len] = '\0';
  return exe;
}

}  // namespace

bool is_two_hosts_rank(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--two_hosts_rank") return true;
  }
  return false;
}

int two_hosts_rank(int argc, char** argv) {
  try {
    const int steps = std::stoi(arg(argc, argv, "steps", "10"));
    const int resnet_steps = std::stoi(arg(argc, argv, "resnet_steps", "3"));
    const std::string link = arg(argc, argv, "link", "0");
    dist::init();
    for (const Model& m : models) {
      const int s = m.name == "resnet18" ? resnet_steps : steps;
      auto w = make_train_workload(m.name, "f32", m.batch);
      dist::GradientReducer reducer;  // fit's default: 25 MB buckets
      StepTimes over = time_steps(w, Path::overlapped, 2, s, reducer);
      StepTimes block = time_steps(w, Path::blocking, 1, s, reducer);
      StepTimes none = time_steps(w, Path::plain, 1, s, reducer);
      if (dist::rank() == 0) {
        std::string k = "link" + link + "_" + m.name + "_";
        put(k + "step_s", over.step_s);
        put(k + "wait_s", over.wait_s);
        put(k + "backward_s", over.backward_s);
        put(k + "blocking_wait_s", block.wait_s);
        put(k + "blocking_step_s", block.step_s);
        put(k + "plain_step_s", none.step_s);
      }
    }
    dist::barrier();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scaling --two_hosts_rank: %s\n", e.what());
    return 1;
  }
  return 0;
}

int run_two_hosts(int argc, char** argv) {
  try {
    if (geteuid() != 0) throw std::runtime_error("--two_hosts needs root (network namespaces)");
    const int reps = std::stoi(arg(argc, argv, "reps", "2"));
    const std::string steps = arg(argc, argv, "steps", "10"), resnet_steps = arg(argc, argv, "resnet_steps", "3");
    const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY");
    const std::string root = ws ? ws : ".";
    const std::string tool = arg(argc, argv, "fakehosts", root + "/scripts/fakehosts");
    char path[] = "/tmp/kiln-scaling2-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) throw std::runtime_error("cannot create a results file");
    close(fd);
    setenv("KILN_SCALING_RESULTS", path, 1);
    const std::string load_before = load_average();
    Hosts hosts(tool);
    std::vector<std::string> applied(links.size());
    const std::string exe = self_exe();
    for (int rep = 0; rep < reps; ++rep) {
      for (size_t l = 0; l < links.size(); ++l) {
        applied[l] = hosts.shape(links[l]);
        std::string cmd = "OMP_NUM_THREADS=1 " + hosts.dir() + "/mpirun -H h1,h2 -np 2 -x OMP_NUM_THREADS -x " +
                          "KILN_SCALING_RESULTS " + exe + " --two_hosts_rank --link " + std::to_string(l) +
                          " --steps " + steps + " --resnet_steps " + resnet_steps;
        int status = 0;
        std::string out = run_output(cmd, &status);
        if (status != 0) throw std::runtime_error("the ranks failed over '" + links[l].name + "': " + out);
        auto res = read_results();
        for (const Model& m : models) {
          std::string k = "link" + std::to_string(l) + "_" + m.name + "_";
          std::printf("rep %d, %s, %s: %.1f ms/step (exposed allreduce %.1f ms, alone %.1f ms)\n", rep,
                      links[l].name.c_str(), m.name.c_str(), res[k + "step_s"].back() * 1e3,
                      res[k + "wait_s"].back() * 1e3, res[k + "blocking_wait_s"].back() * 1e3);
          std::fflush(stdout);
        }
      }
    }
    auto res = read_results();
    auto med = [&](const std::string& k) { return median(res[k]); };
    time_t t = time(nullptr);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&t));
    std::ostringstream md;
    md << "# Data-parallel training over two emulated hosts (dist/, Open MPI TCP)\n\n";
    md << "Measured " << date << " with `bazel run -c opt //benchmarks:scaling -- --two_hosts --reps " << reps
       << " --steps " << steps << " --resnet_steps " << resnet_steps << "` on " << cpu_model()
       << ". Two hosts h1 and h2 are network namespaces on this one machine (`scripts/fakehosts`), one rank "
          "each with one OpenMP thread, joined by a veth data network that MPI's TCP transport uses; "
          "both ranks share this machine's cores, so the compute is not that of two machines. F32, "
          "Adam, fixed random batches, fit's step (each rank computes half of the global batch, gradients "
          "all-reduced in 25 MB buckets); medians of "
       << reps << " repetitions. 1-minute load average " << load_before << " before and " << load_average()
       << " after: other work shared these cores while it ran (the machine was loaded), so read the "
          "figures as relative to each other, not as this CPU's best.\n\n";
    md << "Links (both hosts' data link):\n\n";
    for (size_t l = 0; l < links.size(); ++l) md << "- " << links[l].name << ": " << applied[l] << "\n";
    md << "\nHidden = 1 - (allreduce wait after backward when buckets start during backward) / (the same wait "
          "when all buckets start after backward).\n\n";
    md << "| link | model | global batch | gradients (MB) | ms/step | img/s | ms/step without communication | "
          "allreduce after backward (ms) | exposed when overlapped (ms) | hidden |\n"
          "|---|---|---|---|---|---|---|---|---|---|\n";
    for (size_t l = 0; l < links.size(); ++l) {
      for (const Model& m : models) {
        std::string k = "link" + std::to_string(l) + "_" + m.name + "_";
        double step = med(k + "step_s"), alone = med(k + "blocking_wait_s"), exposed = med(k + "wait_s");
        double hidden = alone > 0 ? std::clamp(1 - exposed / alone, 0.0, 1.0) : 0;
        auto w = make_train_workload(m.name, "f32", 1);
        char row[400];
        std::snprintf(row, sizeof row, "| %s | %s | %lld | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f%% |\n",
                      links[l].name.c_str(), m.name.c_str(), (long long)m.batch, gradient_bytes(w) / 1048576.0,
                      step * 1e3, m.batch / step, med(k + "plain_step_s") * 1e3, alone * 1e3, exposed * 1e3,
                      100 * hidden);
        md << row;
      }
    }
    std::printf("\n%s", md.str().c_str());
    std::string out = root + "/benchmarks/results/scaling_two_hosts.md";
    std::ofstream(out) << md.str();
    std::printf("\nwritten to %s\n", out.c_str());
    std::remove(path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scaling --two_hosts: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace kiln::bench
