// Placement: which replica of which shard should move next, so that
//   1. no replica stays on a worker being decommissioned (POST /remove) or one
//      unreachable for longer than the replacement delay, as long as a healthy
//      worker without a copy of that shard can take it, and
//   2. replicas are spread evenly: no worker holds two more than another.
// One move at a time: the rebalancer carries it out, then asks again. Pure
// function of the map and of worker health, so it is tested on its own.
#pragma once

#include "src/cluster/cluster_map.h"

#include <optional>
#include <set>
#include <string>

namespace rm {

struct PlacementInput {
  std::set<std::string> healthy;  // workers that passed their last health check
  std::set<std::string> dead;     // unreachable for longer than the replacement delay
};

// The pending move if there is one (it is resumed), else the next move, else
// nothing. Never plans with RF < 2 (those shards are not Raft groups).
std::optional<ReplicaMove> PlanNextMove(const ClusterMap& map, const PlacementInput& input);

}  // namespace rm
