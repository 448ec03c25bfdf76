// ClusterMap: the workers of the cluster and which workers hold each shard.
// Owned by the control node (persisted as JSON under its DB_PATH) and pushed to
// every worker, so a worker can forward an insert for a shard it does not hold.
//
// Each shard has a replica set of `replication_factor` distinct workers (fewer
// when there are fewer workers); the first is its owner, the preferred leader.
// With RF 1 the owner is the only copy. Shards are assigned once, round-robin
// (shard s on workers s, s+1, ... mod n), and never move afterwards in this
// version: a worker that joins later is registered and health-checked but
// holds no shard until replicas can be moved (Raft membership changes).
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

struct WorkerInfo {
  std::string id;       // "" until the worker told us (WORKER_HOSTS entries)
  std::string address;  // host:port of its HTTP API
  uint64_t raft_id = 0;       // 0 until it has an id
  std::string raft_address;   // host:port of its Raft port ("" until reported)
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
};

}  // namespace rm
