// WorkerService, what it reports about itself: /health (and the same body to
// the control node's map pushes), /status, /stats and the Prometheus gauges.
#include "src/worker/worker_service.h"

#include "src/worker/worker_responses.h"

#include "src/cluster/write_dispatcher.h"
#include "src/common/time_util.h"
#include "src/net/error_response.h"
#include "src/partition/partitioner.h"
#include "src/query/aggregate_merge.h"
#include "src/query/aggregate_spec.h"
#include "src/query/aggregation.h"
#include "src/wire/point_parser.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <future>
#include <limits>
#include <set>

namespace rm {

namespace pb = raftmetrics::v1;

void WorkerService::CollectMetrics() {
  storage_bytes_.Clear();
  shard_points_.Clear();
  for (ShardStore* store : shards_.All()) {
    std::string shard = std::to_string(store->shard());
    storage_bytes_.Set({shard}, static_cast<double>(store->DiskBytes()));
    shard_points_.Set({shard}, static_cast<double>(store->point_count()));
  }
  shard_leader_.Clear();
  if (auto map = CurrentMap()) {
    for (uint32_t s : map->ShardsOf(config_.node_id)) shard_leader_.Set({std::to_string(s), config_.node_id}, 1);
  }
  free_bytes_.Set({}, static_cast<double>(FreeBytes(config_.db_path)));
  if (Replicas()) {
    auto map = CurrentMap();
    raft_role_.Clear();
    for (const auto& g : Replicas()->GroupsJson(map ? &*map : nullptr)) {
      std::string shard = std::to_string(g["shard"].get<uint32_t>());
      raft_term_.Set({shard}, g["term"].get<double>());
      raft_role_.Set({shard, g["role"].get<std::string>()}, 1);
      {
        std::lock_guard<std::mutex> lock(terms_mu_);
        uint64_t& last = last_terms_[g["shard"].get<uint32_t>()];
        const uint64_t term = g["term"].get<uint64_t>();
        if (term > last) raft_elections_.Add({shard}, static_cast<double>(term - last));
        last = std::max(last, term);
        uint64_t& seen = last_installs_[g["shard"].get<uint32_t>()];
        const uint64_t installs = g["snapshots_installed"].get<uint64_t>();
        if (installs > seen) raft_snapshots_installed_.Add({shard}, static_cast<double>(installs - seen));
        seen = std::max(seen, installs);
      }
      raft_is_leader_.Set({shard}, g["role"] == "leader" ? 1 : 0);
      raft_commit_index_.Set({shard}, g["commit_index"].get<double>());
      raft_applied_index_.Set({shard}, g["applied_index"].get<double>());
    }
  }
}

nlohmann::json WorkerService::StatsJson() {
  nlohmann::json shards = nlohmann::json::array();
  uint64_t total = 0;
  for (ShardStore* store : shards_.All()) {
    total += store->point_count();
    // The sum of every value is a checksum replicas of one shard must agree on.
    PointFilter everything;
    everything.min_max = false;
    everything.use_rollup = false;  // the points themselves, in their (replicated) order
    auto agg = store->Aggregate(everything);
    shards.push_back({{"shard", store->shard()},
                      {"points", store->point_count()},
                      {"sum", agg.ok() ? nlohmann::json(agg->sum) : nlohmann::json(nullptr)},
                      {"bytes", store->DiskBytes()},
                      {"applied_index", store->applied_index()}});
  }
  return {{"points_stored", total}, {"shards", shards}};
}

WorkerService::~WorkerService() { Stop(); }

nlohmann::json WorkerService::RaftStatusJson(const ClusterMap* map) {
  nlohmann::json groups = Replicas() ? Replicas()->GroupsJson(map) : nlohmann::json::array();
  if (groups.empty()) {
    return {{"role", "standalone"}, {"term", 0}, {"leader_id", config_.node_id}, {"last_heartbeat", nullptr},
            {"groups", groups}};
  }
  // Summary: leader of how many groups, highest term, most advanced log, most
  // recent contact; leader_id is the first group's (each group has its own).
  uint64_t term = 0, last_log = 0, leading = 0;
  nlohmann::json last_heartbeat = nullptr;
  for (const auto& g : groups) {
    term = std::max(term, g["term"].get<uint64_t>());
    last_log = std::max(last_log, g["last_log_index"].get<uint64_t>());
    leading += g["role"] == "leader";
    if (g["last_heartbeat"].is_string() &&
        (last_heartbeat.is_null() || g["last_heartbeat"].get<std::string>() > last_heartbeat.get<std::string>())) {
      last_heartbeat = g["last_heartbeat"];
    }
  }
  return {{"role", leading ? "leader" : "follower"}, {"term", term}, {"last_log_index", last_log},
          {"leader_id", groups[0]["leader_id"]}, {"last_heartbeat", last_heartbeat},
          {"leader_of", leading}, {"groups", groups}};
}

nlohmann::json WorkerService::HealthJson() {
  const int64_t uptime_s = (NowMicros() - started_us_) / 1000000;
  const uint64_t used = shards_.DiskBytes();
  const uint64_t free = FreeBytes(config_.db_path);
  nlohmann::json shards = nlohmann::json::array();
  auto map = CurrentMap();
  nlohmann::json shard_points = nlohmann::json::object();
  if (map) {
    for (uint32_t s : map->ShardsOf(config_.node_id)) {
      shards.push_back(s);
      ShardStore* store = shards_.Find(s);
      shard_points[std::to_string(s)] = store ? store->point_count() : 0;
    }
  }
  return {{"status", "healthy"},
          {"node_id", config_.node_id},
          {"role", "worker"},
          {"address", Replicas() ? advertise_ : std::string()},  // set with the host
          {"uptime", FormatUptime(uptime_s)},
          {"uptime_seconds", uptime_s},
          {"storage",
           {{"total_size", FormatBytes(used)},
            {"free_space", FormatBytes(free)},
            {"total_size_bytes", used},
            {"free_space_bytes", free}}},
          {"shards", shards},
          {"shard_points", shard_points},
          {"cluster_map_version", map ? map->version() : 0},
          {"raft_address", Replicas() ? Replicas()->advertise() : ""},
          {"raft_status", RaftStatusJson(map ? &*map : nullptr)}};
}

HttpResponse WorkerService::HandleHealth(HttpRequest&) {
  // A worker serves once its Raft host runs and a control node told it the
  // cluster map (which shards are its own); until then 503, saying which.
  // Control nodes check workers through /internal/map, not this.
  nlohmann::json body = HealthJson();
  std::string reason;
  if (!Replicas()) {
    reason = "starting its Raft host";
  } else if (auto map = CurrentMap(); !map || !map->assigned()) {
    reason = "waiting for the cluster map from a control node";
  }
  if (reason.empty()) return JsonResponse(body);
  body["status"] = "starting";
  body["reason"] = reason;
  return HttpResponse::Json(503, body.dump());
}

HttpResponse WorkerService::HandleStatus(HttpRequest&) {
  auto map = CurrentMap();
  nlohmann::json groups = Replicas() ? Replicas()->GroupsJson(map ? &*map : nullptr) : nlohmann::json::array();
  std::set<uint32_t> replicated;
  for (const auto& g : groups) replicated.insert(g["shard"].get<uint32_t>());
  // Shards kept without Raft (replication factor 1): one copy, always "leader".
  if (map) {
    for (uint32_t s : map->ShardsOf(config_.node_id)) {
      if (replicated.count(s)) continue;
      ShardStore* store = shards_.Find(s);
      const uint64_t applied = store ? store->applied_index() : 0;
      groups.push_back({{"shard", s}, {"group", "shard-" + std::to_string(s)}, {"role", "standalone"},
                        {"term", 0}, {"commit_index", applied}, {"applied_index", applied},
                        {"last_log_index", applied}, {"leader_id", config_.node_id},
                        {"peers", {{{"id", config_.node_id}}}}});
    }
  }
  return JsonResponse({{"node_id", config_.node_id},
                       {"role", "worker"},
                       {"raft_address", Replicas() ? Replicas()->advertise() : ""},
                       {"replication_factor", map ? map->replication_factor() : 0},
                       {"groups", groups}});
}

}  // namespace rm
