// ReplicaHost: the Raft side of a worker. When the cluster map replicates
// shards (replication factor >= 2) it runs, for every shard the map has on
// this worker (ClusterMap::HostedBy: replica sets and moves to it), a
// ShardReplica over the worker's single Raft port (RaftNetwork). The founding
// replicas of a shard that never moved bootstrap its group with the replica
// set from the map (once every member's Raft address is known); any other
// replica starts empty and waits for the group's leader to add it. A replica
// the map no longer has here (it moved away) is closed and its files deleted.
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

  // Starts the replicas `map` asks of this node that are not running yet and
  // drops the ones it no longer asks for.
  void Sync(const ClusterMap& map);
  // The running replica of `shard`, or nullptr. Shared: a request may still be
  // using it (a write waiting for its entry) when a move drops it here; the
  // replica is closed at once and freed when the last user lets go.
  std::shared_ptr<raft::ShardReplica> Find(uint32_t shard);
  // Per group: shard, role, term, commit/applied index, leader (worker id).
  nlohmann::json GroupsJson(const ClusterMap* map);
  const std::string& advertise() const { return advertise_; }
  void Close();

 private:
  std::string RaftDir(uint32_t shard) const;

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
  std::map<uint32_t, std::shared_ptr<raft::ShardReplica>> replicas_;
  bool closed_ = false;
};

}  // namespace rm
