// WorkerService: the worker node. Hosts shard stores and serves
//   POST /insert, POST /compute, GET /health          (seed 001 worker API)
//   POST /internal/write   apply ShardCommands        (protobuf, from control/workers)
//   POST /internal/query   partial aggregates         (protobuf, from control)
//   POST /internal/map     receive the cluster map    (JSON, from control; answers health)
//   GET  /internal/snapshot?shard=&min_index=  a shard's files, for a replica
//                          catching up by snapshot (from other workers)
//   POST /internal/members add/remove a replica of a shard group (on its leader)
// Writes are applied through ShardStore::ApplyNext today; Raft will sit between
// /internal/write and the store without changing either side.
// Thread-safe: handlers run concurrently on the server's handler pool.
#pragma once

#include "src/cluster/cluster_map.h"
#include "src/common/task_pool.h"
#include "src/cluster/join_announcer.h"
#include "src/cluster/node_config.h"
#include "src/cluster/write_sender.h"
#include "src/net/http_client.h"
#include "src/net/router.h"
#include "src/observability/metrics_registry.h"
#include "src/worker/replica_host.h"
#include "src/worker/shard_registry.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace rm {

class WorkerService {
 public:
  WorkerService(NodeConfig config, MetricsRegistry& metrics);
  ~WorkerService();

  // Opens the shard files and the last known cluster map. Call before the
  // server accepts requests, so no query ever sees a shard as empty because its
  // file is not open yet.
  Status Open();
  // Starts registration with CONTROL_HOST when set. `port` is the port bound.
  void StartRegistration(uint16_t port);
  void Stop();
  void RegisterRoutes(Router& router);
  // This node's part of GET /stats: stored points and bytes per shard.
  nlohmann::json StatsJson();

 private:
  HttpResponse HandleInsert(HttpRequest& req);
  HttpResponse HandleCompute(HttpRequest& req);
  HttpResponse HandleHealth(HttpRequest& req);
  HttpResponse HandleStatus(HttpRequest& req);
  HttpResponse HandleInternalWrite(HttpRequest& req);
  HttpResponse HandleInternalQuery(HttpRequest& req);
  HttpResponse HandleInternalMap(HttpRequest& req);
  HttpResponse HandleInternalAggregate(HttpRequest& req);
  HttpResponse HandleInternalSnapshot(HttpRequest& req);
  // Opens (creates) the RF 1 shards `map` gives this worker, in the background.
  void OpenOwnedShards(const ClusterMap& map);
  // Membership change of a shard group, on its leader (from the control node's rebalancer).
  HttpResponse HandleInternalMembers(HttpRequest& req);
  // Brings a snapshot of `shard` at >= `min_index` from another replica (the
  // raft::SnapshotFetcher of this node's shard replicas).
  Result<std::string> FetchSnapshot(uint32_t shard, uint64_t min_index, uint64_t source_id);

  nlohmann::json HealthJson();
  // Whether this node may answer for `shard` (always, when it is not replicated).
  // Whether this worker answers for `shard` in a read: only if its map says it
  // holds the shard (and, replicated, runs its replica); then, strong: only as
  // leader, after confirming it has applied everything committed (a Raft
  // barrier); leader_only (consistency=weak): only while this replica believes
  // it leads; else any replica.
  bool ReadyToRead(uint32_t shard, bool strong, bool leader_only);
  nlohmann::json RaftStatusJson(const ClusterMap* map);
  std::optional<ClusterMap> CurrentMap();
  // Applies one command to a local shard, refusing shards this worker does not own.
  raftmetrics::v1::ShardWriteResult ApplyLocal(const raftmetrics::v1::ShardCommand& command);
  // Commands for one shard kept without Raft, applied in one group commit.
  std::vector<raftmetrics::v1::ShardWriteResult> ApplyStandalone(
      const ClusterMap* map, const std::vector<const raftmetrics::v1::ShardCommand*>& commands);
  // The same through the shard's Raft group (replication factor >= 2).
  raftmetrics::v1::ShardWriteResult ApplyReplicated(const ClusterMap& map, const raftmetrics::v1::ShardCommand& command);

  // Gauges mirroring the shards (bytes, points, which shards this node leads).
  void CollectMetrics();

  NodeConfig config_;
  ShardRegistry shards_;
  MetricFamily& points_inserted_;
  MetricFamily& storage_bytes_;
  MetricFamily& shard_points_;
  MetricFamily& shard_leader_;
  MetricFamily& free_bytes_;
  MetricFamily& raft_term_;
  MetricFamily& raft_is_leader_;
  MetricFamily& raft_commit_index_;
  MetricFamily& raft_applied_index_;
  MetricFamily& raft_proposals_;
  MetricFamily& raft_commit_seconds_;
  MetricFamily& raft_elections_;
  MetricFamily& raft_snapshots_installed_;
  MetricFamily& raft_role_;
  std::mutex terms_mu_;
  // Per shard, what CollectMetrics saw last, to turn totals into counter
  // increments (guarded by terms_mu_).
  std::map<uint32_t, uint64_t> last_terms_;
  std::map<uint32_t, uint64_t> last_installs_;
  HttpClient client_;
  DirectWriteSender writes_;  // forwarded inserts
  const int64_t started_us_;
  std::string advertise_;

  std::mutex map_mu_;
  std::optional<ClusterMap> map_;  // guarded by map_mu_

  std::unique_ptr<JoinAnnouncer> registration_;  // with CONTROL_HOST
  // Set by StartRegistration (which knows the ports) while requests are being
  // served already: readers go through Replicas(), which is null until then.
  std::unique_ptr<ReplicaHost> replica_host_;
  std::atomic<ReplicaHost*> replicas_{nullptr};
  ReplicaHost* Replicas() const { return replicas_.load(std::memory_order_acquire); }
  // The running replica of `shard` here, or nullptr (none, or Raft not started yet).
  std::shared_ptr<raft::ShardReplica> FindReplica(uint32_t shard) const {
    ReplicaHost* host = Replicas();
    return host ? host->Find(shard) : nullptr;
  }
  // Runs the per-shard parts of a request concurrently on reused threads. Last
  // member: destroyed (and drained) first.
  TaskPool tasks_;
};

}  // namespace rm
