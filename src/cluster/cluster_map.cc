#include "src/cluster/cluster_map.h"

#include "src/cluster/node_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace rm {

bool ClusterMap::UpsertWorker(const std::string& id, const std::string& address) {
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
      for (auto& owner : owners_) {
        if (!w.id.empty() && owner == w.id) owner = id;
      }
      w.id = id;
      changed = true;
    }
  } else {
    workers_.push_back({id, addr});
    changed = true;
  }
  if (changed) ++version_;
  return changed;
}

const WorkerInfo* ClusterMap::FindWorker(const std::string& id) const {
  for (const auto& w : workers_) {
    if (w.id == id) return &w;
  }
  return nullptr;
}

const WorkerInfo* ClusterMap::Owner(uint32_t shard) const {
  if (!assigned_ || shard >= owners_.size()) return nullptr;
  return FindWorker(owners_[shard]);
}

std::vector<uint32_t> ClusterMap::ShardsOf(const std::string& id) const {
  std::vector<uint32_t> out;
  if (!assigned_) return out;
  for (uint32_t s = 0; s < owners_.size(); ++s) {
    if (owners_[s] == id) out.push_back(s);
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
  for (uint32_t s = 0; s < num_shards_; ++s) owners_[s] = ids[s % ids.size()];
  assigned_ = true;
  ++version_;
}

nlohmann::json ClusterMap::ToJson() const {
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : workers_) workers.push_back({{"id", w.id}, {"address", w.address}});
  return {{"num_shards", num_shards_}, {"version", version_}, {"assigned", assigned_},
          {"workers", workers}, {"shard_owners", owners_}};
}

Result<ClusterMap> ClusterMap::FromJson(const nlohmann::json& json) {
  try {
    ClusterMap map(json.at("num_shards").get<uint32_t>());
    map.version_ = json.at("version").get<uint64_t>();
    map.assigned_ = json.at("assigned").get<bool>();
    for (const auto& w : json.at("workers")) {
      map.workers_.push_back({w.at("id").get<std::string>(), w.at("address").get<std::string>()});
    }
    map.owners_ = json.at("shard_owners").get<std::vector<std::string>>();
    if (map.owners_.size() != map.num_shards_ || map.num_shards_ == 0) {
      return Status(Code::kInvalidRequest, "cluster map: shard_owners does not match num_shards");
    }
    return map;
  } catch (const std::exception& e) {
    return Status(Code::kInvalidRequest, std::string("cluster map: ") + e.what());
  }
}

Status ClusterMap::Save(const std::string& path) const {
  // Write-then-rename, so a crash leaves either the old or the new map.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << ToJson().dump(2) << "\n";
    out.flush();
    if (!out) return Status(Code::kStorage, "cannot write " + tmp, {{"operation", "save_cluster_map"}});
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status(Code::kStorage, "cannot rename " + tmp + ": " + ec.message());
  return Status::Ok();
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
