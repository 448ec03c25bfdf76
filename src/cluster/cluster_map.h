// ClusterMap: the workers of the cluster and which worker holds each shard.
// Owned by the control node (persisted as JSON under its DB_PATH) and pushed to
// every worker, so a worker can forward an insert for a shard it does not hold.
//
// Shards are assigned once, round-robin over the workers known at that moment,
// and never move afterwards in this version: a worker that joins later is
// registered and health-checked but holds no shard until replicas can be moved
// (Raft membership changes). A value type; not thread-safe by itself.
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
};

class ClusterMap {
 public:
  ClusterMap() = default;
  explicit ClusterMap(uint32_t num_shards) : num_shards_(num_shards), owners_(num_shards) {}

  uint32_t num_shards() const { return num_shards_; }
  uint64_t version() const { return version_; }
  const std::vector<WorkerInfo>& workers() const { return workers_; }
  bool assigned() const { return assigned_; }

  // Adds or updates a worker; a worker known by id or by address counts once.
  // Returns true when the map changed.
  bool UpsertWorker(const std::string& id, const std::string& address);
  const WorkerInfo* FindWorker(const std::string& id) const;
  // Owner of a shard, or nullptr before assignment.
  const WorkerInfo* Owner(uint32_t shard) const;
  // Shards owned by worker `id`.
  std::vector<uint32_t> ShardsOf(const std::string& id) const;
  // Assigns every shard round-robin over the workers with a known id.
  // Precondition: !assigned().
  void AssignRoundRobin();

  nlohmann::json ToJson() const;
  static Result<ClusterMap> FromJson(const nlohmann::json& json);

  Status Save(const std::string& path) const;
  // nullopt when the file does not exist.
  static Result<std::optional<ClusterMap>> Load(const std::string& path);

 private:
  uint32_t num_shards_ = 0;
  uint64_t version_ = 0;
  bool assigned_ = false;
  std::vector<WorkerInfo> workers_;
  std::vector<std::string> owners_;  // shard -> worker id
};

}  // namespace rm
