#include "dist/launch.h"

#include <stdexcept>
#include <string>

#include "dist/relaunch.h"
#include "dist/world.h"
#include "nn/checkpoint.h"

namespace kiln::dist {
namespace {

void write_variables(const std::string& path, const std::vector<Variable>& vars) {
  nn::NamedTensors entries;
  for (const Variable& v : vars) entries.emplace_back(v.name(), v.value());
  nn::write_checkpoint(path, entries);
}

// By position: the variables are the same ones in every run of main().
void read_variables(const std::string& path, const std::vector<Variable>& vars) {
  nn::NamedTensors entries = nn::read_checkpoint(path);
  if (entries.size() != vars.size()) {
    throw std::runtime_error("dist::launch: rank 0 returned " + std::to_string(entries.size()) + " variables, expected " +
                             std::to_string(vars.size()));
  }
  for (size_t i = 0; i < vars.size(); ++i) {
    if (entries[i].second.shape() != vars[i].shape() || entries[i].second.dtype() != vars[i].dtype()) {
      throw std::runtime_error("dist::launch: rank 0's variable '" + entries[i].first + "' is " +
                               entries[i].second.describe() + " but '" + vars[i].name() + "' here is " +
                               vars[i].value().describe());
    }
  }
  for (size_t i = 0; i < vars.size(); ++i) vars[i].value().copy_from(entries[i].second);
}

}  // namespace

void launch(int n, const std::function<void()>& fn, const LaunchOptions& options) {
  const std::string what = "dist::launch(" + std::to_string(n) + ")";
  if (n < 1) throw std::invalid_argument(what + ": num_processes must be at least 1");
  if (!relaunched_job() && under_launcher()) {  // the user's own mpirun
    init();
    fn();
    return;
  }
  if (n == 1) {  // nothing to launch, here or in a relaunched rank
    fn();
    return;
  }
  int call = next_launch_call();
  switch (launch_role(call)) {
    case LaunchRole::skip:
      return;
    case LaunchRole::launcher: {
      std::string dir = make_job_dir();
      try {
        run_ranks(what, n, options.oversubscribe, dir, call);
        if (!options.return_variables.empty()) read_variables(dir + "/result.ckpt", options.return_variables);
      } catch (...) {
        remove_job_dir(dir);
        throw;
      }
      remove_job_dir(dir);
      return;
    }
    case LaunchRole::worker:
      try {
        init();
        if (rank() == 0) unmute_stdout();
        fn();
        if (rank() == 0 && !options.return_variables.empty()) {
          write_variables(relaunched_job()->dir + "/result.ckpt", options.return_variables);
        }
      } catch (const std::exception& e) {
        abort_job(e.what());
      }
      end_rank();
  }
}

}  // namespace kiln::dist
