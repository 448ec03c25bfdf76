#include "src/worker/replica_host.h"

#include "src/common/time_util.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

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
  if (self && self->raft_id == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  // A worker missing from an assigned map was removed (decommissioned): it hosts
  // nothing, and drops whatever replicas it still has. Returning here instead
  // left them behind whenever the last move and the removal reached it in one map.
  const std::vector<uint32_t> hosted = self ? map.HostedBy(node_id_) : std::vector<uint32_t>{};
  for (uint32_t shard : hosted) {
    if (replicas_.count(shard)) continue;
    std::vector<raft::RaftPeer> peers;
    const auto members = map.Replicas(shard);
    const bool founder = map.Bootstraps(shard) &&
                         std::any_of(members.begin(), members.end(), [&](auto* w) { return w->id == node_id_; });
    if (founder) {
      for (const WorkerInfo* w : members) {
        if (w->raft_id == 0 || w->raft_address.empty()) break;
        peers.push_back({w->raft_id, w->raft_address});
      }
      if (peers.size() != members.size()) continue;  // not every address is known yet
    }
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
    o.dir = RaftDir(shard);
    o.network = network_.get();
    o.group_id = shard;
    o.name = "shard " + std::to_string(shard);
    auto replica = std::make_shared<raft::ShardReplica>(*loop_, o, **store, fetcher_);
    Status s = replica->Start(peers);  // empty: joins an existing group (or has Raft state already)
    if (!s.ok()) {
      spdlog::error("shard {}: cannot start its Raft replica: {}", shard, s.ToString());
      continue;
    }
    spdlog::info("shard {}: Raft replica {} started ({})", shard, self->raft_id,
                 founder ? "founding member, " + std::to_string(peers.size()) + " peers" : "joining the group");
    replicas_[shard] = std::move(replica);
  }
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    const uint32_t shard = it->first;
    if (std::binary_search(hosted.begin(), hosted.end(), shard)) {
      ++it;
      continue;
    }
    // The map completes a move only after the group removed this replica, so
    // nothing here is still needed.
    spdlog::info("shard {}: replica moved away from {}; dropping it", shard, node_id_);
    it->second->Close();
    it = replicas_.erase(it);
    std::error_code ec;
    std::filesystem::remove_all(RaftDir(shard), ec);
    shards_.Drop(shard);
  }
}

std::string ReplicaHost::RaftDir(uint32_t shard) const { return dir_ + "/raft-" + std::to_string(shard); }

std::shared_ptr<raft::ShardReplica> ReplicaHost::Find(uint32_t shard) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = replicas_.find(shard);
  return it == replicas_.end() ? nullptr : it->second;
}

nlohmann::json ReplicaHost::GroupsJson(const ClusterMap* map) {
  std::vector<std::pair<uint32_t, std::shared_ptr<raft::ShardReplica>>> replicas;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [shard, r] : replicas_) replicas.emplace_back(shard, r);
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
    // The group's own configuration (it may be ahead of the map during a move).
    nlohmann::json peers = nlohmann::json::array();
    for (uint64_t id : r->Voters()) {
      std::string worker, address;
      if (map) {
        for (const auto& w : map->workers()) {
          if (w.raft_id == id) {
            worker = w.id;
            address = w.raft_address;
          }
        }
      }
      peers.push_back({{"id", worker}, {"raft_id", id}, {"raft_address", address}});
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
                      {"leader_id", leader},
                      {"last_heartbeat", st.last_contact_ms >= 0
                                             ? nlohmann::json(FormatIso8601(NowMicros() - st.last_contact_ms * 1000))
                                             : nlohmann::json(nullptr)}});
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
