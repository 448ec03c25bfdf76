// WorkerPool: the control node's view of its workers. Owns the cluster map
// (persisted under DB_PATH), takes registrations (/join, WORKER_HOSTS), assigns
// shards once enough workers are known, and health-checks every worker in the
// background; each health check also pushes the current map to the worker.
// Thread-safe.
#pragma once

#include "src/cluster/cluster_map.h"
#include "src/cluster/node_config.h"
#include "src/net/http_client.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace rm {

struct WorkerHealth {
  bool healthy = false;
  int64_t last_ok_us = 0;
  nlohmann::json last_report;  // the worker's /health body
};

class WorkerPool {
 public:
  WorkerPool(NodeConfig config, HttpClient& client);
  ~WorkerPool();

  // Loads the persisted map (or starts one from WORKER_HOSTS) and starts health checks.
  Status Start();
  void Stop();

  // Registers a worker (from /join). Returns the map version after the change.
  Result<uint64_t> Join(const std::string& id, const std::string& address);

  ClusterMap Snapshot() const;
  std::map<std::string, WorkerHealth> Health() const;  // by address

  // Replicated shards: the worker believed to lead `shard` ("" = unknown),
  // from health reports and NOT_LEADER answers.
  std::string LeaderHint(uint32_t shard) const;
  // False once health checks found the worker down (true before its first check).
  bool Healthy(const WorkerInfo& worker) const;
  void SetLeaderHint(uint32_t shard, const std::string& worker_id);
  // The worker to ask for `shard`: its leader when known and healthy, else a
  // healthy replica, else its owner (nullptr before assignment). Points into `map`.
  const WorkerInfo* ReadTarget(const ClusterMap& map, uint32_t shard) const;
  // consistency=none: the first healthy replica in the shard's order (spreads
  // reads over owners), else its owner.
  const WorkerInfo* AnyHealthyReplica(const ClusterMap& map, uint32_t shard) const;
  // For RAFT_ERROR: how many replicas of `shard` passed their last health
  // check, and the highest term of the shard's group they reported.
  struct QuorumView {
    uint32_t healthy_replicas = 0;
    uint64_t term = 0;
  };
  QuorumView Quorum(const ClusterMap& map, uint32_t shard) const;
  // Whether a write to each shard could be taken now, as of the last health
  // checks: a shard is writable when its only replica is healthy, or (Raft) a
  // healthy replica reported leading its group; `leaderless` shards have
  // healthy replicas but no leader yet (an election); `unreachable` shards have
  // no healthy replica at all.
  struct Writability {
    size_t writable = 0;
    std::vector<uint32_t> leaderless;
    std::vector<uint32_t> unreachable;
  };
  Writability WritableShards(const ClusterMap& map) const;

  // Applies `change` to a copy of the map; when it returns true the copy
  // becomes the map (through the committer, if any), is persisted and pushed to
  // every worker at once. Changes are serialised. Returns the map after.
  Result<ClusterMap> UpdateMap(const std::function<bool(ClusterMap&)>& change);
  // Routes map changes through the meta group: `commit` replicates the new map
  // and returns once AdoptMap has been called with it (or fails: not the leader).
  // `needs_seed`: true when the group holds no map yet (this node's cached map
  // is then committed as is).
  using Committer = std::function<Status(const ClusterMap&)>;
  void SetCommitter(Committer commit, std::function<bool()> needs_seed);
  // Makes `map` the current map (the meta group's apply callback) and caches it.
  void AdoptMap(const ClusterMap& map);
  // Shards whose group worker `id` reported running, as of its last health check.
  std::set<uint32_t> ReportedGroups(const std::string& id) const;

 private:
  void HealthLoop();
  // Health-checks every worker once; true when the map changed meanwhile.
  bool CheckAll();
  // Assigns shards in `map` when enough workers are known.
  void MaybeAssign(ClusterMap& map) const;
  Status PersistLocked();

  const NodeConfig config_;
  HttpClient& client_;
  const std::string map_path_;

  std::mutex mutate_mu_;  // serialises UpdateMap; guards commit_ (taken before mu_)
  Committer commit_;
  std::function<bool()> needs_seed_;
  mutable std::mutex mu_;
  ClusterMap map_;                                // guarded by mu_
  std::map<std::string, WorkerHealth> health_;    // by address; guarded by mu_
  // Workers that left the map (decommissioned) still get the map that removed
  // them, so they drop their last replicas: address -> pushes left. Only the
  // health loop touches it.
  std::map<std::string, int> leaving_;
  std::vector<std::string> pushed_to_;             // addresses of the last push
  std::map<uint32_t, std::string> leaders_;       // shard -> worker id; guarded by mu_
  // Placement by self-registration: when the last new worker appeared, and the
  // worker count last logged while waiting.
  static constexpr int64_t kPlacementSettleUs = 2000000;
  std::atomic<int64_t> last_new_worker_us_{0};
  mutable std::atomic<size_t> waiting_logged_{SIZE_MAX};

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool push_now_ = false;  // the map changed: push it without waiting (guarded by stop_mu_)
  std::thread loop_;
};

}  // namespace rm
