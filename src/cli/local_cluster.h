// `raftmetrics local`: the embedded default cluster. Starts a control node and
// N workers as child processes of this binary (each a real node with its own
// port and data directory under --data), prints how to use them, and stops them
// all on Ctrl-C. A second start reuses the data directories.
#pragma once

#include <cstdint>
#include <string>

namespace rm {

struct LocalOptions {
  std::string data_dir = "./data";
  uint16_t control_port = 8080;
  uint16_t first_worker_port = 8081;
  int workers = 2;
  uint32_t shards = 16;
  uint32_t replication_factor = 0;  // 0: 3 with >= 3 workers, else 1
  std::string bind = "127.0.0.1";
  // Security: with neither tokens nor a tokens file, a token is generated (or
  // reused from <data>/token) and printed. A cluster secret is generated per run
  // unless CLUSTER_SECRET is set. The nodes get both through their environment.
  std::string auth_tokens;
  std::string tokens_file;
  // Passed to every node; -1 leaves the node's own default (or its environment).
  int64_t rate_limit_per_minute = -1;
  int query_timeout_ms = -1;
  int write_timeout_ms = -1;
};

int RunLocal(const LocalOptions& options, const std::string& self_exe);

}  // namespace rm
