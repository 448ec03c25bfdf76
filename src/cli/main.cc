// raftmetrics: one binary, several roles.
//   raftmetrics control [flags]      control node (public API)
//   raftmetrics worker  [flags]      worker node (shard storage)
//   raftmetrics local   [flags]      control + workers on this machine
//   raftmetrics                      the role from NODE_ROLE
// Every node flag has an environment variable (seed 001 names); flags win.
#include "src/cli/local_cluster.h"
#include "src/cli/node_runner.h"
#include "src/cli/stats_command.h"
#include "src/cluster/node_config.h"
#include "src/observability/logging.h"
#include "src/raft/raft_loop.h"
#include "src/storage/duckdb.h"
#include "src/wire/protobuf_log.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <malloc.h>
#include <filesystem>
#include <fstream>

namespace {

struct Flags {
  rm::NodeConfig node;
  std::string id;
  std::string worker_hosts;
  int port = -1;
};

void AddNodeFlags(CLI::App* app, Flags& f) {
  app->add_option("--id", f.id, "Node id; a number N means worker-N / control-N")->envname("NODE_ID");
  app->add_option("--port", f.port, "HTTP port (control 8080, worker 8081)")->envname("PORT");
  app->add_option("--bind", f.node.bind, "Address to listen on")->envname("BIND_ADDRESS");
  app->add_option("--advertise", f.node.advertise, "host:port other nodes use to reach this node")
      ->envname("ADVERTISE_ADDRESS");
  app->add_option("--db-path", f.node.db_path, "Directory for all of this node's files")->envname("DB_PATH");
  app->add_option("--worker-hosts", f.worker_hosts, "Control: static workers, host:port,...")
      ->envname("WORKER_HOSTS");
  app->add_option("--control-host", f.node.control_host, "Worker: register with this control node (or the first of host:port,... that answers); control: join the meta group of these control nodes")
      ->envname("CONTROL_HOST");
  app->add_option("--shards", f.node.shards, "Number of shards (fixed for the cluster's life)")
      ->envname("SHARDS")->check(CLI::Range(1, 4096));
  app->add_option("--replication-factor", f.node.replication_factor, "Replicas per shard; 0 = 3 with >= 3 workers, else 1")
      ->envname("REPLICATION_FACTOR");
  app->add_option("--raft-port", f.node.raft_port,
                  "Raft port: a worker's shard groups, a control node's meta group (default: HTTP port + 1000)")
      ->envname("RAFT_PORT")->check(CLI::Range(0, 65535));
  app->add_option("--raft-snapshot-threshold", f.node.raft_snapshot_threshold,
                  "Worker: snapshot each shard group every N committed entries (0 = never compact the log)")
      ->envname("RAFT_SNAPSHOT_THRESHOLD");
  app->add_option("--raft-snapshot-trailing", f.node.raft_snapshot_trailing,
                  "Worker: log entries kept behind a snapshot, for followers slightly behind")
      ->envname("RAFT_SNAPSHOT_TRAILING");
  app->add_option("--control-nodes", f.node.control_nodes,
                  "Control: all control nodes of the meta group, host:port[@raft_port],... (same list on each)")
      ->envname("CONTROL_NODES");
  app->add_option("--replace-dead-after-s", f.node.replace_dead_after_s,
                  "Control: re-create the replicas of a worker unreachable this long on live workers (0 = never)")
      ->envname("REPLACE_DEAD_AFTER_S")->check(CLI::Range(0, 86400 * 30));
  app->add_option("--min-workers", f.node.min_workers,
                  "Control: place shards once this many workers are known (default: the WORKER_HOSTS count, or 1)")
      ->envname("MIN_WORKERS");
  app->add_option("--query-timeout-ms", f.node.query_timeout_ms, "Per-worker deadline of a query")
      ->envname("QUERY_TIMEOUT_MS")->check(CLI::Range(1, 600000));
  app->add_option("--write-timeout-ms", f.node.write_timeout_ms, "Per-worker deadline of a write")
      ->envname("WRITE_TIMEOUT_MS")->check(CLI::Range(1, 600000));
  app->add_option("--health-interval-ms", f.node.health_interval_ms, "Control: worker health check period")
      ->envname("HEALTH_INTERVAL_MS")->check(CLI::Range(50, 600000));
  app->add_option("--max-body-bytes", f.node.max_body_bytes, "Largest accepted request body (413 above)")
      ->envname("MAX_BODY_BYTES");
  app->add_option("--max-pending-body-bytes", f.node.max_pending_body_bytes,
                  "Memory for request bodies still arriving, all connections together (503 above)")
      ->envname("MAX_PENDING_BODY_BYTES");
  app->add_option("--handler-threads", f.node.handler_threads, "Request handler threads")
      ->envname("HANDLER_THREADS")->check(CLI::Range(1, 1024));
  app->add_option("--duckdb-threads", f.node.duckdb_threads, "Worker: DuckDB threads per shard")
      ->envname("DUCKDB_THREADS")->check(CLI::Range(1, 256));
  app->add_option("--shard-memory-limit", f.node.shard_memory_limit, "Worker: DuckDB memory limit per shard")
      ->envname("SHARD_MEMORY_LIMIT");
  app->add_option("--rollup-min-points", f.node.rollup_min_points,
                  "Worker: points a shard needs before whole hours are read from its hourly rollup")
      ->envname("ROLLUP_MIN_POINTS");
  app->add_option("--hourly-totals-cells", f.node.hourly_totals_cells,
                  "Worker: (series, hour) cells of the hourly rollup each shard also keeps in memory (0: none)")
      ->envname("HOURLY_TOTALS_CELLS");
  app->add_option("--write-buffer-points", f.node.write_buffer_points,
                  "Worker: points a shard without Raft acknowledges from its command log before writing them "
                  "to DuckDB in one transaction (0: every write commits to DuckDB)")
      ->envname("WRITE_BUFFER_POINTS");
  app->add_option("--auth-tokens", f.node.auth_tokens, "Comma-separated API tokens (prefer AUTH_TOKENS or a file)")
      ->envname("AUTH_TOKENS");
  app->add_option("--tokens-file", f.node.tokens_file, "API tokens, one name:token[:expiry] per line")
      ->envname("TOKENS_FILE");
  app->add_option("--cluster-secret", f.node.cluster_secret, "Secret nodes present to each other")
      ->envname("CLUSTER_SECRET");
  app->add_flag("--public-health", f.node.public_health, "Serve /health without a token (load balancers)")
      ->envname("PUBLIC_HEALTH");
  app->add_option("--rate-limit", f.node.rate_limit_per_minute,
                  "Requests per minute per token (default 1000 control, 5000 worker; 0 = unlimited)")
      ->envname("RATE_LIMIT_PER_MINUTE")->check(CLI::Range(0, 100000000));
  app->add_option("--idempotency-ttl-s", f.node.idempotency_ttl_s, "How long an Idempotency-Key is remembered")
      ->envname("IDEMPOTENCY_TTL_S")->check(CLI::Range(1, 30 * 86400));
}

std::string VersionText() {
  return std::string("raftmetrics ") + RM_VERSION + "\n  DuckDB " + rm::db::LibraryVersion() + "\n  raft " +
         rm::raft::LibraryVersion() + " (libuv " + rm::raft::LibuvVersion() + ")\n";
}

// A token for client commands: the first of AUTH_TOKENS, else the one
// `raftmetrics local` wrote to ./data/token.
std::string DefaultToken() {
  if (const char* env = std::getenv("AUTH_TOKENS"); env && *env) {
    auto tokens = rm::SplitList(env);
    if (!tokens.empty()) return tokens[0];
  }
  std::ifstream in("./data/token");
  std::string token;
  std::getline(in, token);
  return token;
}

int Finish(Flags& f, const std::string& role) {
  rm::NodeConfig c = f.node;
  c.role = role;
  if (c.replication_factor > 7) {
    spdlog::critical("--replication-factor must be between 1 and 7 (0: automatic), not {}", c.replication_factor);
    return 2;
  }
  if (f.port < 0) f.port = role == "control" ? 8080 : 8081;
  if (f.port > 65535) {
    spdlog::critical("--port {} is out of range", f.port);
    return 2;
  }
  if (c.max_pending_body_bytes < c.max_body_bytes) {
    spdlog::critical("--max-pending-body-bytes ({}) must be at least --max-body-bytes ({}): a body between them "
                     "could never be taken", c.max_pending_body_bytes, c.max_body_bytes);
    return 2;
  }
  c.port = static_cast<uint16_t>(f.port);
  c.node_id = f.id.empty() ? role + "-" + std::to_string(f.port) : rm::NormalizeNodeId(role, f.id);
  if (c.db_path.empty()) c.db_path = "./data/" + c.node_id;
  c.worker_hosts = rm::SplitList(f.worker_hosts);
  return rm::RunNode(c);
}

}  // namespace

int main(int argc, char** argv) {
  // Request bodies and batches are large and short-lived: keep freed memory in
  // the heap instead of mmap/munmap per request (page faults showed up in
  // profiles of ingest as a tenth of the control node's time).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  rm::InstallSignalMask();
  auto log_settings =
      rm::LogSettingsFromEnv(std::getenv("LOG_LEVEL"), std::getenv("RUST_LOG"), std::getenv("LOG_FORMAT"));
  if (!log_settings.ok()) {
    std::fprintf(stderr, "%s\n", log_settings.status().message().c_str());
    return 2;
  }
  rm::ConfigureLogging(*log_settings);
  rm::InstallProtobufLogHandler();

  CLI::App app{"RaftMetrics: a distributed analytics database for metrics"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", VersionText());
  Flags control_flags, worker_flags, env_flags;
  auto* control = app.add_subcommand("control", "Run a control node");
  AddNodeFlags(control, control_flags);
  auto* worker = app.add_subcommand("worker", "Run a worker node");
  AddNodeFlags(worker, worker_flags);

  rm::LocalOptions local_options;
  auto* local = app.add_subcommand("local", "Run a control node and workers on this machine");
  local->add_option("--data", local_options.data_dir, "Data directory")->envname("DB_PATH");
  local->add_option("--port", local_options.control_port, "Control node port");
  local->add_option("--worker-port", local_options.first_worker_port, "First worker port (then +1, +2 ...)");
  local->add_option("--workers", local_options.workers, "Number of workers")->check(CLI::Range(1, 64));
  local->add_option("--shards", local_options.shards, "Number of shards")->check(CLI::Range(1, 4096));
  local->add_option("--replication-factor", local_options.replication_factor,
                    "Replicas per shard; 0 = 3 with >= 3 workers, else 1")
      ->envname("REPLICATION_FACTOR");
  local->add_option("--rate-limit", local_options.rate_limit_per_minute,
                    "Requests per minute per token (default 1000 control, 5000 worker; 0 = unlimited)")
      ->envname("RATE_LIMIT_PER_MINUTE")->check(CLI::Range(0, 100000000));
  local->add_option("--query-timeout-ms", local_options.query_timeout_ms,
                    "A worker slower than this makes a query's answer partial (default 2000)")
      ->envname("QUERY_TIMEOUT_MS")->check(CLI::Range(1, 600000));
  local->add_option("--write-timeout-ms", local_options.write_timeout_ms, "Deadline of a write (default 5000)")
      ->envname("WRITE_TIMEOUT_MS")->check(CLI::Range(1, 600000));
  local->add_option("--bind", local_options.bind, "Address the nodes listen on");
  local->add_option("--auth-tokens", local_options.auth_tokens, "Comma-separated API tokens (default: generated)");
  local->add_option("--tokens-file", local_options.tokens_file, "API tokens file, name:token[:expiry] per line");
  local->footer(
      "Every other node setting passes through from the environment, under the names of\n"
      "`raftmetrics control --help` and `raftmetrics worker --help` (e.g. WRITE_BUFFER_POINTS,\n"
      "IDEMPOTENCY_TTL_S, MAX_BODY_BYTES, PUBLIC_HEALTH, CLUSTER_SECRET, LOG_LEVEL): each node\n"
      "started by `local` inherits it. The banner appears once the cluster takes writes.");
  rm::StatsOptions stats_options;
  auto* stats = app.add_subcommand("stats", "Print request and storage counters of every node of a cluster");
  stats->add_option("--control", stats_options.control, "A control node, host:port")->envname("CONTROL_HOST");
  stats->add_option("--token", stats_options.token,
                    "API token (default: AUTH_TOKEN, the first of AUTH_TOKENS, or ./data/token)")
      ->envname("AUTH_TOKEN");
  stats->add_option("--timeout-ms", stats_options.timeout_ms, "Per-node deadline")->check(CLI::Range(1, 600000));
  stats->add_flag("--json", stats_options.json, "Print the collected /stats answers as JSON");
  AddNodeFlags(&app, env_flags);  // bare `raftmetrics` with NODE_ROLE

  CLI11_PARSE(app, argc, argv);

  if (control->parsed()) return Finish(control_flags, "control");
  if (worker->parsed()) return Finish(worker_flags, "worker");
  if (stats->parsed()) {
    if (stats_options.token.empty()) stats_options.token = DefaultToken();
    return rm::RunStats(stats_options);
  }
  if (local->parsed()) {
    if (local_options.replication_factor > 7) {
      spdlog::critical("--replication-factor must be between 1 and 7 (0: automatic), not {}",
                       local_options.replication_factor);
      return 2;
    }
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return rm::RunLocal(local_options, ec ? argv[0] : exe.string());
  }
  const char* role = std::getenv("NODE_ROLE");
  if (role && (std::string(role) == "control" || std::string(role) == "worker")) {
    return Finish(env_flags, role);
  }
  std::fprintf(stderr, "%s\nChoose a role: control, worker or local (or set NODE_ROLE).\n",
               app.help().c_str());
  return 2;
}
