// ControlService: the control node's public API.
//   POST /insert    seed 000 points (JSON, JSON batch, NDJSON, protobuf)
//   POST /metrics   seed 001 points, partitioned by series
//   GET  /analytics average over every shard, partial when workers are missing
//   GET  /health    uptime, worker health, raft status
//   POST /join      a worker registers itself ({"id","addr","role"})
// Writes are split per shard and sent to the owners (see write_dispatcher.h);
// reads scatter partial aggregates and merge them here.
// Thread-safe: handlers run concurrently.
#pragma once

#include <atomic>

#include "src/cluster/join_announcer.h"
#include "src/cluster/meta_group.h"
#include "src/cluster/node_config.h"
#include "src/cluster/write_sender.h"
#include "src/control/rebalancer.h"
#include "src/control/worker_pool.h"
#include "src/net/http_client.h"
#include "src/net/router.h"
#include "src/observability/metrics_registry.h"
#include "src/query/aggregate_spec.h"
#include "src/wire/point_parser.h"

#include <functional>
#include <optional>
#include <set>
#include <vector>

namespace rm {

class ControlService {
 public:
  ControlService(NodeConfig config, MetricsRegistry& metrics);
  ~ControlService();

  Status Start();
  void Stop();
  void RegisterRoutes(Router& router);
  // This node's part of GET /stats: the workers and, per shard, its owner and
  // stored points as of the owner's last health report.
  nlohmann::json StatsJson();

 private:
  HttpResponse HandleWrite(HttpRequest& req, InsertDialect dialect);
  HttpResponse HandleAnalytics(HttpRequest& req);
  HttpResponse HandleAggregate(HttpRequest& req);

  // Asks every shard of one replica and gathers the answers. Round one sends
  // every worker one request naming its shards (body from make_body; the
  // leader when known, or any replica for consistency=none). Shards left
  // unanswered (the replica is down, or is not the leader or cannot confirm it)
  // are asked of the next replica, until each has had every replica or the
  // query deadline passes. With consistency=weak, shards that no leader
  // answered are finally read from any live replica (during an election the
  // answer stays complete, if possibly stale). Each answer parsed as Message is
  // handed to `take`, which records the shards it covers; the shards nobody
  // covered are `missing` (sorted). A 400 from a worker (the query itself is
  // refused, e.g. too many groups) is passed back as `refused`.
  using BodyFn = std::function<std::string(const std::vector<uint32_t>& shards, bool leader_read)>;
  struct Gathered {
    uint32_t total_nodes = 0;
    uint32_t responding = 0;
    std::vector<uint32_t> missing;
    std::optional<HttpResponse> refused;
  };
  template <typename Message>
  Gathered ScatterGather(const ClusterMap& map, const std::string& target, ReadConsistency consistency,
                         const BodyFn& make_body, const char* what,
                         const std::function<void(const Message&, std::set<uint32_t>&)>& take);
  HttpResponse HandleHealth(HttpRequest& req);
  HttpResponse HandleStatus(HttpRequest& req);
  HttpResponse HandleJoin(HttpRequest& req);
  HttpResponse HandleRemove(HttpRequest& req);
  // POST /join and /remove for control nodes (on the meta leader): membership of
  // the meta group. `raft_addr` "": the HTTP port + 1000.
  HttpResponse JoinControlNode(const std::string& id, const std::string& addr, std::string raft_addr);
  HttpResponse RemoveControlNode(const std::string& id);
  // Map changes are made by the meta group's leader: a request for one that
  // reaches another control node is passed to the leader as is.
  HttpResponse ForwardToMetaLeader(HttpRequest& req);

  // Gauges mirroring the cluster: workers up/down, shard leaders.
  void CollectMetrics();

  NodeConfig config_;
  HttpClient client_;
  // Inserts of concurrent clients reach each worker merged (write_sender.h).
  CoalescingWriteSender writes_;
  WorkerPool workers_;
  std::unique_ptr<MetaGroup> meta_;  // set by Start()
  std::unique_ptr<JoinAnnouncer> meta_join_;  // a control node joining the group at run time
  Rebalancer rebalancer_;
  MetricFamily& points_inserted_;
  MetricFamily& worker_up_;
  MetricFamily& shard_leader_;
  const int64_t started_us_;
  std::atomic<bool> ready_once_{false};  // /health has answered 200 once
  // How long /health waits for every reachable shard to elect a leader before
  // it answers 200 with the leaderless ones listed (several election timeouts).
  static constexpr int64_t kLeaderWaitUs = 15 * 1000000;
};

}  // namespace rm
