#include "src/cluster/placement.h"

#include <algorithm>
#include <map>

namespace rm {

std::optional<ReplicaMove> PlanNextMove(const ClusterMap& map, const PlacementInput& input) {
  if (!map.assigned() || map.replication_factor() < 2) return std::nullopt;
  if (!map.pending_moves().empty()) return map.pending_moves().front();

  // Workers that may receive a replica, with how many they run now.
  std::map<std::string, size_t> load;
  for (const auto& w : map.workers()) {
    if (w.id.empty() || w.raft_address.empty() || map.decommissioning(w.id)) continue;
    if (!input.healthy.count(w.id) || input.dead.count(w.id)) continue;
    load[w.id] = map.HostedBy(w.id).size();
  }
  auto holds = [&](uint32_t shard, const std::string& id) {
    for (const WorkerInfo* r : map.Replicas(shard)) {
      if (r->id == id) return true;
    }
    return false;
  };
  // The least loaded eligible worker without a copy of `shard` (ties: by id).
  auto best_target = [&](uint32_t shard) -> std::string {
    std::string best;
    for (const auto& [id, n] : load) {
      if (holds(shard, id)) continue;
      if (best.empty() || n < load[best]) best = id;
    }
    return best;
  };

  for (uint32_t s = 0; s < map.num_shards(); ++s) {
    for (const WorkerInfo* r : map.Replicas(s)) {
      const bool leaving = map.decommissioning(r->id);
      if (!leaving && !input.dead.count(r->id)) continue;
      std::string to = best_target(s);
      if (!to.empty()) return ReplicaMove{s, r->id, to, leaving ? "decommission" : "replace_dead"};
    }
  }

  if (load.size() < 2) return std::nullopt;
  auto [lo, hi] = std::minmax_element(load.begin(), load.end(), [](const auto& a, const auto& b) {
    return a.second < b.second;
  });
  if (hi->second < lo->second + 2) return std::nullopt;
  for (uint32_t s : map.ShardsOf(hi->first)) {
    if (!holds(s, lo->first)) return ReplicaMove{s, hi->first, lo->first, "rebalance"};
  }
  return std::nullopt;
}

}  // namespace rm
