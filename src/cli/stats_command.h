// `raftmetrics stats`: asks the control node for its /stats and the list of
// workers, then every worker for its /stats, and prints one table of request
// counters per node followed by the stored points per shard (seed 002's
// "Stats" request, for the whole cluster at once).
#pragma once

#include <string>

namespace rm {

struct StatsOptions {
  std::string control = "127.0.0.1:8080";  // host:port of a control node
  std::string token;                       // bearer token ("" = none)
  int timeout_ms = 3000;
  bool json = false;                       // print the collected JSON instead
};

// Returns the process exit code (0 when the control node answered).
int RunStats(const StatsOptions& options);

}  // namespace rm
