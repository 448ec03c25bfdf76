#include "src/cluster/cluster_map.h"

#include "src/cluster/node_config.h"
#include "src/storage/file_sync.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rm {

bool ClusterMap::UpsertWorker(const std::string& id, const std::string& address) {
  if (!id.empty() && removed(id)) return false;  // decommissioned for good
  const std::string addr = NormalizeAddress(address);
  constexpr size_t kNone = static_cast<size_t>(-1);
  size_t by_id = kNone, by_addr = kNone;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!id.empty() && workers_[i].id == id) by_id = i;
    if (!addr.empty() && workers_[i].address == addr) by_addr = i;
  }
  bool changed = false;
  if (by_id != kNone) {
    if (!addr.empty() && workers_[by_id].address != addr) {
      workers_[by_id].address = addr;  // the worker moved
      // An id-less WORKER_HOSTS entry for the new address was this worker all along.
      if (by_addr != kNone && by_addr != by_id && workers_[by_addr].id.empty()) {
        workers_.erase(workers_.begin() + static_cast<std::ptrdiff_t>(by_addr));
      }
      changed = true;
    }
  } else if (by_addr != kNone) {
    WorkerInfo& w = workers_[by_addr];
    if (!id.empty() && w.id != id) {
      // Another worker now answers on that address: it takes over the old one's shards.
      for (auto& set : replicas_) {
        for (auto& r : set) {
          if (!w.id.empty() && r == w.id) r = id;
        }
      }
      if (w.id.empty() || w.raft_id == 0) w.raft_id = next_raft_id_++;
      w.id = id;
      changed = true;
    }
  } else {
    workers_.push_back({id, addr, id.empty() ? 0 : next_raft_id_++, ""});
    changed = true;
  }
  if (changed) ++version_;
  return changed;
}

bool ClusterMap::SetRaftAddress(const std::string& id, const std::string& raft_address) {
  WorkerInfo* w = MutableWorker(id);
  if (!w || w->raft_address == raft_address) return false;
  w->raft_address = raft_address;
  ++version_;
  return true;
}

WorkerInfo* ClusterMap::MutableWorker(const std::string& id) {
  for (auto& w : workers_) {
    if (!id.empty() && w.id == id) return &w;
  }
  return nullptr;
}

const WorkerInfo* ClusterMap::FindWorker(const std::string& id) const {
  for (const auto& w : workers_) {
    if (w.id == id) return &w;
  }
  return nullptr;
}

const WorkerInfo* ClusterMap::Owner(uint32_t shard) const {
  if (!assigned_ || shard >= replicas_.size() || replicas_[shard].empty()) return nullptr;
  return FindWorker(replicas_[shard][0]);
}

std::vector<const WorkerInfo*> ClusterMap::Replicas(uint32_t shard) const {
  std::vector<const WorkerInfo*> out;
  if (!assigned_ || shard >= replicas_.size()) return out;
  for (const auto& id : replicas_[shard]) {
    if (const WorkerInfo* w = FindWorker(id)) out.push_back(w);
  }
  return out;
}

std::vector<uint32_t> ClusterMap::ShardsOf(const std::string& id) const {
  std::vector<uint32_t> out;
  if (!assigned_) return out;
  for (uint32_t s = 0; s < replicas_.size(); ++s) {
    for (const auto& r : replicas_[s]) {
      if (r == id) {
        out.push_back(s);
        break;
      }
    }
  }
  return out;
}

void ClusterMap::AssignRoundRobin() {
  RM_CHECK(!assigned_, "shards are assigned once");
  std::vector<std::string> ids;
  for (const auto& w : workers_) {
    if (!w.id.empty()) ids.push_back(w.id);
  }
  RM_CHECK(!ids.empty(), "assignment needs at least one worker");
  // Unset (0): 3 copies when there are at least 3 workers (a 2-replica group
  // survives no failure, so 2 workers keep 1), fixed from now on.
  if (replication_factor_ == 0) replication_factor_ = ids.size() >= 3 ? 3 : 1;
  const size_t rf = std::min<size_t>(replication_factor_, ids.size());
  for (uint32_t s = 0; s < num_shards_; ++s) {
    replicas_[s].clear();
    for (size_t k = 0; k < rf; ++k) replicas_[s].push_back(ids[(s + k) % ids.size()]);
  }
  assigned_ = true;
  ++version_;
}

const ReplicaMove* ClusterMap::PendingMove(uint32_t shard) const {
  for (const auto& m : moves_) {
    if (m.shard == shard) return &m;
  }
  return nullptr;
}

bool ClusterMap::BeginMove(const ReplicaMove& move) {
  if (!assigned_ || move.shard >= replicas_.size() || PendingMove(move.shard)) return false;
  const auto& set = replicas_[move.shard];
  const bool from_holds = std::find(set.begin(), set.end(), move.from) != set.end();
  const bool to_holds = std::find(set.begin(), set.end(), move.to) != set.end();
  if (!from_holds || to_holds || !FindWorker(move.to)) return false;
  moves_.push_back(move);
  ++version_;
  return true;
}

void ClusterMap::CompleteMove(uint32_t shard) {
  auto it = std::find_if(moves_.begin(), moves_.end(), [&](const ReplicaMove& m) { return m.shard == shard; });
  if (it == moves_.end()) return;
  for (auto& r : replicas_[shard]) {
    if (r == it->from) r = it->to;
  }
  moves_.erase(it);
  if (!std::binary_search(reconfigured_.begin(), reconfigured_.end(), shard)) {
    reconfigured_.insert(std::upper_bound(reconfigured_.begin(), reconfigured_.end(), shard), shard);
  }
  ++version_;
}

std::string ClusterMap::Learner(uint32_t shard) const {
  const ReplicaMove* m = PendingMove(shard);
  return m ? m->to : "";
}

std::vector<uint32_t> ClusterMap::HostedBy(const std::string& id) const {
  std::vector<uint32_t> out = ShardsOf(id);
  for (const auto& m : moves_) {
    if (m.to == id) out.push_back(m.shard);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool ClusterMap::Bootstraps(uint32_t shard) const {
  return !std::binary_search(reconfigured_.begin(), reconfigured_.end(), shard);
}

bool ClusterMap::decommissioning(const std::string& id) const {
  return std::find(decommissioning_.begin(), decommissioning_.end(), id) != decommissioning_.end();
}

void ClusterMap::SetDecommissioning(const std::string& id) {
  if (decommissioning(id) || !FindWorker(id)) return;
  decommissioning_.push_back(id);
  ++version_;
}

bool ClusterMap::removed(const std::string& id) const {
  return std::find(removed_.begin(), removed_.end(), id) != removed_.end();
}

Status ClusterMap::RemoveWorker(const std::string& id) {
  if (!FindWorker(id)) return Status(Code::kNotFound, "no worker " + id);
  if (!HostedBy(id).empty()) {
    return Status(Code::kUnavailable, "worker " + id + " still holds replicas", {{"shards", HostedBy(id)}});
  }
  for (const auto& m : moves_) {
    if (m.from == id) return Status(Code::kUnavailable, "a replica of worker " + id + " is still moving");
  }
  workers_.erase(std::remove_if(workers_.begin(), workers_.end(), [&](const WorkerInfo& w) { return w.id == id; }),
                 workers_.end());
  decommissioning_.erase(std::remove(decommissioning_.begin(), decommissioning_.end(), id), decommissioning_.end());
  if (!removed(id)) removed_.push_back(id);
  ++version_;
  return Status::Ok();
}

bool ClusterMap::SetControlNodes(std::vector<ControlNodeInfo> nodes) {
  if (nodes == control_nodes_) return false;
  control_nodes_ = std::move(nodes);
  ++version_;
  return true;
}

nlohmann::json ClusterMap::ToJson() const {
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : workers_) {
    workers.push_back({{"id", w.id}, {"address", w.address}, {"raft_id", w.raft_id},
                       {"raft_address", w.raft_address}});
  }
  std::vector<std::string> owners;  // kept for readers of the first format
  for (const auto& set : replicas_) owners.push_back(set.empty() ? "" : set[0]);
  nlohmann::json moves = nlohmann::json::array();
  for (const auto& m : moves_) {
    moves.push_back({{"shard", m.shard}, {"from", m.from}, {"to", m.to}, {"reason", m.reason}});
  }
  nlohmann::json controls = nlohmann::json::array();
  for (const auto& c : control_nodes_) {
    controls.push_back({{"id", c.id}, {"address", c.address}, {"raft_id", c.raft_id},
                        {"raft_address", c.raft_address}});
  }
  return {{"num_shards", num_shards_}, {"replication_factor", replication_factor_}, {"version", version_},
          {"assigned", assigned_}, {"next_raft_id", next_raft_id_}, {"workers", workers},
          {"shard_owners", owners}, {"shard_replicas", replicas_}, {"pending_moves", moves},
          {"reconfigured_shards", reconfigured_}, {"decommissioning", decommissioning_},
          {"removed_workers", removed_}, {"control_nodes", controls}};
}

Result<ClusterMap> ClusterMap::FromJson(const nlohmann::json& json) {
  try {
    ClusterMap map(json.at("num_shards").get<uint32_t>(), json.value("replication_factor", 1u));
    map.version_ = json.at("version").get<uint64_t>();
    map.assigned_ = json.at("assigned").get<bool>();
    for (const auto& w : json.at("workers")) {
      WorkerInfo info{w.at("id").get<std::string>(), w.at("address").get<std::string>(),
                      w.value("raft_id", uint64_t{0}), w.value("raft_address", std::string())};
      if (info.raft_id == 0 && !info.id.empty()) info.raft_id = map.next_raft_id_++;  // a map from before Raft ids
      map.next_raft_id_ = std::max(map.next_raft_id_, info.raft_id + 1);
      map.workers_.push_back(std::move(info));
    }
    map.next_raft_id_ = std::max(map.next_raft_id_, json.value("next_raft_id", uint64_t{1}));
    if (json.contains("shard_replicas")) {
      map.replicas_ = json.at("shard_replicas").get<std::vector<std::vector<std::string>>>();
    } else {  // the first format: one owner per shard
      map.replicas_.clear();
      for (const auto& owner : json.at("shard_owners").get<std::vector<std::string>>()) {
        map.replicas_.push_back(owner.empty() ? std::vector<std::string>{} : std::vector<std::string>{owner});
      }
    }
    for (const auto& m : json.value("pending_moves", nlohmann::json::array())) {
      map.moves_.push_back({m.at("shard").get<uint32_t>(), m.at("from").get<std::string>(),
                            m.at("to").get<std::string>(), m.value("reason", std::string())});
    }
    map.reconfigured_ = json.value("reconfigured_shards", std::vector<uint32_t>{});
    std::sort(map.reconfigured_.begin(), map.reconfigured_.end());
    map.decommissioning_ = json.value("decommissioning", std::vector<std::string>{});
    map.removed_ = json.value("removed_workers", std::vector<std::string>{});
    for (const auto& c : json.value("control_nodes", nlohmann::json::array())) {
      map.control_nodes_.push_back({c.at("id").get<std::string>(), c.at("address").get<std::string>(),
                                    c.at("raft_id").get<uint64_t>(), c.at("raft_address").get<std::string>()});
    }
    if (map.replicas_.size() != map.num_shards_ || map.num_shards_ == 0) {
      return Status(Code::kInvalidRequest, "cluster map: shard replicas do not match num_shards");
    }
    return map;
  } catch (const std::exception& e) {
    return Status(Code::kInvalidRequest, std::string("cluster map: ") + e.what());
  }
}

Status ClusterMap::Save(const std::string& path) const {
  // A crash leaves either the old or the new map, and a saved map survives one.
  return WriteFileAtomically(path, ToJson().dump(2) + "\n");
}

Result<std::optional<ClusterMap>> ClusterMap::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::optional<ClusterMap>();
  std::stringstream ss;
  ss << in.rdbuf();
  auto json = nlohmann::json::parse(ss.str(), nullptr, false);
  if (json.is_discarded()) return Status(Code::kStorage, "corrupt cluster map " + path);
  auto map = FromJson(json);
  if (!map.ok()) return map.status();
  return std::optional<ClusterMap>(std::move(*map));
}

}  // namespace rm
