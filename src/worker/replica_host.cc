#include "src/worker/replica_host.h"

#include <spdlog/spdlog.h>

namespace rm {

ReplicaHost::ReplicaHost(std::string node_id, std::string listen, std::string advertise, std::string dir,
                         ShardRegistry& shards, raft::RaftGroupOptions group_options, raft::SnapshotFetcher fetcher)
    : node_id_(std::move(node_id)),
      listen_(std::move(listen)),
      advertise_(std::move(advertise)),
      dir_(std::move(dir)),
      shards_(shards),
      group_options_(std::move(group_options)),
      fetcher_(std::move(fetcher)) {}

ReplicaHost::~ReplicaHost() { Close(); }

void ReplicaHost::Sync(const ClusterMap& map) {
  if (!map.assigned() || map.replication_factor() < 2) return;
  const WorkerInfo* self = map.FindWorker(node_id_);
  if (!self || self->raft_id == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  for (uint32_t shard : map.ShardsOf(node_id_)) {
    if (replicas_.count(shard)) continue;
    std::vector<raft::RaftPeer> peers;
    for (const WorkerInfo* w : map.Replicas(shard)) {
      if (w->raft_id == 0 || w->raft_address.empty()) break;
      peers.push_back({w->raft_id, w->raft_address});
    }
    if (peers.size() != map.Replicas(shard).size()) continue;  // not every address is known yet
    if (!network_) {
      loop_ = std::make_unique<raft::RaftLoop>();
      (void)loop_->Start();
      network_ = std::make_unique<raft::RaftNetwork>(*loop_, listen_);
      Status s = network_->Start();
      if (!s.ok()) {
        spdlog::error("cannot start Raft: {}", s.ToString());
        network_.reset();
        loop_->Stop();
        loop_.reset();
        return;
      }
      spdlog::info("Raft listening on {} (advertised as {})", listen_, advertise_);
    }
    auto store = shards_.Get(shard);
    if (!store.ok()) {
      spdlog::error("shard {}: cannot open its store: {}", shard, store.status().ToString());
      continue;
    }
    raft::RaftGroupOptions o = group_options_;
    o.id = self->raft_id;
    o.address = advertise_;
    o.dir = dir_ + "/raft-" + std::to_string(shard);
    o.network = network_.get();
    o.group_id = shard;
    auto replica = std::make_unique<raft::ShardReplica>(*loop_, o, **store, fetcher_);
    Status s = replica->Start(peers);
    if (!s.ok()) {
      spdlog::error("shard {}: cannot start its Raft replica: {}", shard, s.ToString());
      continue;
    }
    spdlog::info("shard {}: Raft replica {} started with {} peers", shard, self->raft_id, peers.size());
    replicas_[shard] = std::move(replica);
  }
}

raft::ShardReplica* ReplicaHost::Find(uint32_t shard) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = replicas_.find(shard);
  return it == replicas_.end() ? nullptr : it->second.get();
}

nlohmann::json ReplicaHost::GroupsJson(const ClusterMap* map) {
  std::vector<std::pair<uint32_t, raft::ShardReplica*>> replicas;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [shard, r] : replicas_) replicas.emplace_back(shard, r.get());
  }
  nlohmann::json groups = nlohmann::json::array();
  for (auto& [shard, r] : replicas) {
    raft::RaftStatus st = r->GetStatus();
    std::string leader;
    if (map && st.leader_id) {
      for (const auto& w : map->workers()) {
        if (w.raft_id == st.leader_id) leader = w.id;
      }
    }
    nlohmann::json peers = nlohmann::json::array();
    if (map) {
      for (const WorkerInfo* w : map->Replicas(shard)) {
        peers.push_back({{"id", w->id}, {"raft_id", w->raft_id}, {"raft_address", w->raft_address}});
      }
    }
    groups.push_back({{"shard", shard},
                      {"group", "shard-" + std::to_string(shard)},
                      {"peers", peers},
                      {"role", st.role},
                      {"term", st.term},
                      {"commit_index", st.commit_index},
                      {"applied_index", r->applied_index()},
                      {"snapshots_installed", r->snapshots_installed()},
                      {"last_log_index", st.last_log_index},
                      {"leader_id", leader}});
  }
  return groups;
}

void ReplicaHost::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  for (auto& [shard, r] : replicas_) r->Close();
  replicas_.clear();
  if (network_) network_->Close();
  network_.reset();
  if (loop_) loop_->Stop();
  loop_.reset();
}

}  // namespace rm
