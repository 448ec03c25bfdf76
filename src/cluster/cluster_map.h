// ClusterMap: the workers of the cluster and which workers hold each shard.
// Owned by the control node (persisted as JSON under its DB_PATH) and pushed to
// every worker, so a worker can forward an insert for a shard it does not hold.
//
// Each shard has a replica set of `replication_factor` distinct workers (fewer
// when there are fewer workers); the first is its owner, the preferred leader.
// With RF 1 the owner is the only copy. Shards are first assigned round-robin
// (shard s on workers s, s+1, ... mod n). With RF >= 2 replicas then move
// (src/control/rebalancer.h): a move of shard s from worker A to worker B is
// recorded here first (B is then a *learner*: it runs an empty replica that
// the group adds and promotes), and completed once the group's configuration
// no longer has A. Only the founding replica set of a shard that never moved
// bootstraps its Raft group; every later replica joins empty.
// Every worker with an id also gets a Raft id (1, 2, ... in order of arrival,
// never reused). A value type; not thread-safe by itself.
#pragma once

#include "src/common/status.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rm {

// A replica of `shard` moving from worker `from` to worker `to`.
struct ReplicaMove {
  uint32_t shard = 0;
  std::string from;
  std::string to;
  std::string reason;  // "rebalance", "decommission", "replace_dead"
  bool operator==(const ReplicaMove&) const = default;
};

struct WorkerInfo {
  std::string id;       // "" until the worker told us (WORKER_HOSTS entries)
  std::string address;  // host:port of its HTTP API
  uint64_t raft_id = 0;       // 0 until it has an id
  std::string raft_address;   // host:port of its Raft port ("" until reported)
};

// A control node of the meta group, as recorded once control nodes joined at
// run time (POST /join with role "control"). Empty list: the static
// --control-nodes list is the membership.
struct ControlNodeInfo {
  std::string id;            // "control-2"
  std::string address;       // host:port of its HTTP API
  uint64_t raft_id = 0;      // its id in the meta group
  std::string raft_address;  // host:port of its Raft port
  bool operator==(const ControlNodeInfo&) const = default;
};

class ClusterMap {
 public:
  ClusterMap() = default;
  // replication_factor 0: decided at assignment (3 with >= 3 workers, else 1).
  explicit ClusterMap(uint32_t num_shards, uint32_t replication_factor = 1)
      : num_shards_(num_shards), replication_factor_(replication_factor), replicas_(num_shards) {}

  uint32_t num_shards() const { return num_shards_; }
  uint64_t version() const { return version_; }
  uint32_t replication_factor() const { return replication_factor_; }
  const std::vector<WorkerInfo>& workers() const { return workers_; }
  bool assigned() const { return assigned_; }

  // Adds or updates a worker; a worker known by id or by address counts once.
  // Returns true when the map changed.
  bool UpsertWorker(const std::string& id, const std::string& address);
  // Records where worker `id` takes Raft traffic. Returns true when it changed.
  bool SetRaftAddress(const std::string& id, const std::string& raft_address);
  const WorkerInfo* FindWorker(const std::string& id) const;
  // Owner of a shard (its first replica), or nullptr before assignment.
  const WorkerInfo* Owner(uint32_t shard) const;
  // The replica set of a shard, owner first (empty before assignment).
  std::vector<const WorkerInfo*> Replicas(uint32_t shard) const;
  // Shards with a replica on worker `id`.
  std::vector<uint32_t> ShardsOf(const std::string& id) const;
  // Assigns every shard round-robin over the workers with a known id, each to
  // min(replication_factor, workers) of them. Precondition: !assigned().
  void AssignRoundRobin();

  // Replica moves (RF >= 2). At most one move per shard is pending.
  const std::vector<ReplicaMove>& pending_moves() const { return moves_; }
  const ReplicaMove* PendingMove(uint32_t shard) const;
  // Records a move; `to` becomes a learner of the shard. False if the shard
  // already has a pending move or the move makes no sense.
  bool BeginMove(const ReplicaMove& move);
  // `to` takes `from`'s place in the replica set; the shard no longer bootstraps.
  void CompleteMove(uint32_t shard);
  // The learner of a shard's pending move ("" if none).
  std::string Learner(uint32_t shard) const;
  // Shards worker `id` must run a replica of: its replica sets and pending moves to it.
  std::vector<uint32_t> HostedBy(const std::string& id) const;
  // Whether the shard's replicas bootstrap its Raft group (never moved yet).
  bool Bootstraps(uint32_t shard) const;

  // Decommissioning (POST /remove): the worker's replicas move away first, then
  // it leaves the map. Removed ids may not register again.
  bool decommissioning(const std::string& id) const;
  void SetDecommissioning(const std::string& id);
  // Drops a worker that holds no replica and is no target of a move.
  Status RemoveWorker(const std::string& id);
  bool removed(const std::string& id) const;
  const std::vector<std::string>& decommissioning_workers() const { return decommissioning_; }
  const std::vector<std::string>& removed_workers() const { return removed_; }

  // The meta group's members (see ControlNodeInfo). Returns true when changed.
  const std::vector<ControlNodeInfo>& control_nodes() const { return control_nodes_; }
  bool SetControlNodes(std::vector<ControlNodeInfo> nodes);

  nlohmann::json ToJson() const;
  static Result<ClusterMap> FromJson(const nlohmann::json& json);

  Status Save(const std::string& path) const;
  // nullopt when the file does not exist.
  static Result<std::optional<ClusterMap>> Load(const std::string& path);

 private:
  WorkerInfo* MutableWorker(const std::string& id);

  uint32_t num_shards_ = 0;
  uint32_t replication_factor_ = 1;
  uint64_t version_ = 0;
  bool assigned_ = false;
  uint64_t next_raft_id_ = 1;
  std::vector<WorkerInfo> workers_;
  std::vector<std::vector<std::string>> replicas_;  // shard -> worker ids, owner first
  std::vector<ReplicaMove> moves_;                   // pending, at most one per shard
  std::vector<uint32_t> reconfigured_;               // shards that moved at least once (sorted)
  std::vector<std::string> decommissioning_;
  std::vector<std::string> removed_;
  std::vector<ControlNodeInfo> control_nodes_;
};

}  // namespace rm
