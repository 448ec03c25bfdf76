// ReplicaHost: the Raft side of a worker. When the cluster map replicates
// shards (replication factor >= 2) it starts, for every shard this worker
// holds a replica of, a ShardReplica over the worker's single Raft port
// (RaftNetwork), bootstrapped with the shard's replica set from the map.
// Replicas start once every member's Raft address is known, and stay up for the
// life of the process (membership changes are not handled here yet).
// Thread-safe.
#pragma once

#include "src/cluster/cluster_map.h"
#include "src/raft/raft_network.h"
#include "src/raft/shard_replica.h"
#include "src/worker/shard_registry.h"

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace rm {

class ReplicaHost {
 public:
  // `listen` is bind-host:port for Raft traffic, `advertise` what peers dial.
  // `group_options` holds the settings every group shares (timeouts, log
  // compaction); `fetcher` brings snapshots from other replicas.
  ReplicaHost(std::string node_id, std::string listen, std::string advertise, std::string dir,
              ShardRegistry& shards, raft::RaftGroupOptions group_options, raft::SnapshotFetcher fetcher);
  ~ReplicaHost();

  // Starts the replicas `map` asks of this node that are not running yet.
  void Sync(const ClusterMap& map);
  // The running replica of `shard`, or nullptr.
  raft::ShardReplica* Find(uint32_t shard);
  // Per group: shard, role, term, commit/applied index, leader (worker id).
  nlohmann::json GroupsJson(const ClusterMap* map);
  const std::string& advertise() const { return advertise_; }
  void Close();

 private:
  const std::string node_id_;
  const std::string listen_;
  const std::string advertise_;
  const std::string dir_;
  ShardRegistry& shards_;
  const raft::RaftGroupOptions group_options_;
  const raft::SnapshotFetcher fetcher_;

  std::mutex mu_;  // guards everything below
  std::unique_ptr<raft::RaftLoop> loop_;
  std::unique_ptr<raft::RaftNetwork> network_;
  std::map<uint32_t, std::unique_ptr<raft::ShardReplica>> replicas_;
  bool closed_ = false;
};

}  // namespace rm
