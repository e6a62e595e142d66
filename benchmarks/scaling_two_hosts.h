#pragma once
// The scaling benchmark's two-host mode: two emulated hosts (scripts/fakehosts, network
// namespaces on this machine, one rank each) over links shaped to 10 and 1 Gbit/s.
//   bazel run -c opt //benchmarks:scaling -- --two_hosts [--reps 2] [--steps 10] [--resnet_steps 3]
// Needs root. Prints, per link and model, training throughput and the share of the gradient
// allreduce hidden behind backward, and writes benchmarks/results/scaling_two_hosts.md.

namespace kiln::bench {

// The launching process: makes the hosts, shapes the links, runs the ranks under mpirun
// -H h1,h2 for every link, prints the report. Returns the exit status.
int run_two_hosts(int argc, char** argv);
// A rank started by run_two_hosts (--two_hosts_rank on its command line).
bool is_two_hosts_rank(int argc, char** argv);
int two_hosts_rank(int argc, char** argv);

}  // namespace kiln::bench
