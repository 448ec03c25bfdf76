// Settings of one node. Filled by the command line (src/cli), where every flag
// also has the environment variable of seed 001 (NODE_ROLE, NODE_ID, PORT,
// DB_PATH, WORKER_HOSTS, CONTROL_HOST) or a RaftMetrics one; flags win.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rm {

struct NodeConfig {
  std::string role;        // "control" | "worker"
  std::string node_id;     // "control-1", "worker-2" ...
  std::string bind = "0.0.0.0";
  uint16_t port = 0;
  std::string advertise;   // address other nodes use to reach this one (host:port)
  std::string db_path;     // directory holding all of this node's files

  // Cluster shape (control node).
  std::vector<std::string> worker_hosts;  // static WORKER_HOSTS
  std::string control_host;               // worker: register with this control node
  uint32_t shards = 16;
  uint32_t replication_factor = 0;  // 0: 3 when shards are placed on >= 3 workers, else 1
  int raft_port = -1;        // Raft traffic (worker: all its shards; control: the meta group); < 0 = HTTP port + 1000
  // Control: every control node of the meta group, "host:port[@raft_port],..."
  // in the same order on each; empty = this node alone.
  std::string control_nodes;
  // Log compaction of every shard group: a snapshot each `threshold` entries,
  // `trailing` entries kept behind it (see raft::RaftGroupOptions).
  uint32_t raft_snapshot_threshold = 1024;
  uint32_t raft_snapshot_trailing = 512;
  uint32_t min_workers = 0;  // shards are assigned once this many workers are known
  // Control, RF >= 2: a worker unreachable this long has its replicas re-created
  // on live workers that have room (0: never).
  int replace_dead_after_s = 300;

  // Timeouts and limits.
  int query_timeout_ms = 2000;   // per-worker deadline of a query
  int write_timeout_ms = 5000;   // per-worker deadline of a write
  int health_interval_ms = 1000; // control -> worker health checks
  uint64_t max_body_bytes = 64ull << 20;
  uint64_t max_pending_body_bytes = 1ull << 30;  // bodies still arriving, all connections
  int handler_threads = 32;
  int idempotency_ttl_s = 86400; // how long a client's Idempotency-Key is remembered

  // Security (src/gateway). rate_limit_per_minute < 0: the role's default
  // (1000 on a control node, 5000 on a worker); 0: unlimited.
  std::string auth_tokens;     // AUTH_TOKENS: comma-separated tokens
  std::string tokens_file;     // name:token[:expiry] per line
  std::string cluster_secret;  // what nodes present to each other (see RequestPipeline)
  bool public_health = false;
  int rate_limit_per_minute = -1;

  // Storage (worker).
  int duckdb_threads = 1;
  std::string shard_memory_limit = "512MB";
  uint64_t rollup_min_points = 2 * 122880;  // see kRollupMinPoints
  uint64_t hourly_totals_cells = 200000;    // see kHourlyTotalsCells
  uint64_t write_buffer_points = 131072;    // see kWriteBufferPoints
};

// "2" -> "worker-2"; anything else is kept.
std::string NormalizeNodeId(const std::string& role, const std::string& id);
// "a:1, b:2" -> {"a:1", "b:2"}; trims blanks, drops empties.
std::vector<std::string> SplitList(const std::string& text);
// "localhost:8081" and "127.0.0.1:8081" name the same worker; so do "http://h:1/" and "h:1".
std::string NormalizeAddress(const std::string& address);
// Whether `address` (after NormalizeAddress) is host:port with a port in 1..65535.
bool IsHostPort(const std::string& address);

}  // namespace rm
