#include "src/control/worker_pool.h"

#include "src/cluster/write_dispatcher.h"
#include "src/common/time_util.h"

#include <spdlog/spdlog.h>

#include <future>

namespace rm {

WorkerPool::WorkerPool(NodeConfig config, HttpClient& client)
    : config_(std::move(config)), client_(client), map_path_(config_.db_path + "/cluster_map.json") {}

WorkerPool::~WorkerPool() { Stop(); }

Status WorkerPool::Start() {
  auto loaded = ClusterMap::Load(map_path_);
  if (!loaded.ok()) return loaded.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (*loaded) {
      map_ = std::move(**loaded);
      if (map_.num_shards() != config_.shards) {
        spdlog::warn("cluster map has {} shards; --shards={} ignored (the shard count is fixed "
                     "for the life of a cluster)", map_.num_shards(), config_.shards);
      }
    } else {
      map_ = ClusterMap(config_.shards, config_.replication_factor);
    }
    for (const auto& host : config_.worker_hosts) map_.UpsertWorker("", host);
    Status s = PersistLocked();
    if (!s.ok()) return s;
  }
  loop_ = std::thread([this] { HealthLoop(); });
  return Status::Ok();
}

void WorkerPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (loop_.joinable()) loop_.join();
}

Result<uint64_t> WorkerPool::Join(const std::string& id, const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  if (map_.removed(id)) {
    return Status(Code::kValidation, "Invalid request parameters",
                  {{"fields", {{{"field", "id"},
                                {"error", "worker " + id + " was decommissioned; a node that comes back needs a new "
                                          "id and an empty DB_PATH"}}}}});
  }
  if (map_.UpsertWorker(id, address)) {
    spdlog::info("worker {} at {} registered", id, address);
    MaybeAssignLocked();
    Status s = PersistLocked();
    if (!s.ok()) return s;
  }
  return map_.version();
}

ClusterMap WorkerPool::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_;
}

std::map<std::string, WorkerHealth> WorkerPool::Health() const {
  std::lock_guard<std::mutex> lock(mu_);
  return health_;
}

std::string WorkerPool::LeaderHint(uint32_t shard) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leaders_.find(shard);
  return it == leaders_.end() ? "" : it->second;
}

void WorkerPool::SetLeaderHint(uint32_t shard, const std::string& worker_id) {
  std::lock_guard<std::mutex> lock(mu_);
  leaders_[shard] = worker_id;
}

const WorkerInfo* WorkerPool::AnyHealthyReplica(const ClusterMap& map, uint32_t shard) const {
  auto replicas = map.Replicas(shard);
  std::lock_guard<std::mutex> lock(mu_);
  for (const WorkerInfo* w : replicas) {
    auto it = health_.find(w->address);
    if (it != health_.end() && it->second.healthy) return w;
  }
  return map.Owner(shard);
}

WorkerPool::QuorumView WorkerPool::Quorum(const ClusterMap& map, uint32_t shard) const {
  QuorumView view;
  auto replicas = map.Replicas(shard);
  std::lock_guard<std::mutex> lock(mu_);
  for (const WorkerInfo* w : replicas) {
    auto it = health_.find(w->address);
    if (it == health_.end()) continue;
    if (it->second.healthy) ++view.healthy_replicas;
    const auto& report = it->second.last_report;
    if (!report.is_object() || !report.contains("raft_status")) continue;
    const auto& groups = report["raft_status"].value("groups", nlohmann::json::array());
    for (const auto& g : groups) {
      if (g.value("shard", UINT32_MAX) == shard) view.term = std::max(view.term, g.value("term", uint64_t{0}));
    }
  }
  return view;
}

const WorkerInfo* WorkerPool::ReadTarget(const ClusterMap& map, uint32_t shard) const {
  auto replicas = map.Replicas(shard);
  if (replicas.size() <= 1) return map.Owner(shard);
  std::lock_guard<std::mutex> lock(mu_);
  auto healthy = [&](const WorkerInfo* w) {
    auto it = health_.find(w->address);
    return it != health_.end() && it->second.healthy;
  };
  if (auto it = leaders_.find(shard); it != leaders_.end()) {
    for (const WorkerInfo* w : replicas) {
      if (w->id == it->second && healthy(w)) return w;
    }
  }
  for (const WorkerInfo* w : replicas) {
    if (healthy(w)) return w;
  }
  return replicas.front();
}

Result<ClusterMap> WorkerPool::UpdateMap(const std::function<bool(ClusterMap&)>& change) {
  ClusterMap after;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!change(map_)) return map_;
    Status s = PersistLocked();
    if (!s.ok()) return s;
    after = map_;
  }
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    push_now_ = true;
  }
  stop_cv_.notify_all();
  return after;
}

std::set<uint32_t> WorkerPool::ReportedGroups(const std::string& id) const {
  std::set<uint32_t> shards;
  std::lock_guard<std::mutex> lock(mu_);
  const WorkerInfo* w = map_.FindWorker(id);
  if (!w) return shards;
  auto it = health_.find(w->address);
  if (it == health_.end() || !it->second.healthy) return shards;
  const auto& report = it->second.last_report;
  if (!report.is_object() || !report.contains("raft_status")) return shards;
  for (const auto& g : report["raft_status"].value("groups", nlohmann::json::array())) {
    if (g.contains("shard")) shards.insert(g["shard"].get<uint32_t>());
  }
  return shards;
}

void WorkerPool::MaybeAssignLocked() {
  if (map_.assigned()) return;
  size_t known = 0;
  for (const auto& w : map_.workers()) known += w.id.empty() ? 0 : 1;
  size_t needed = config_.min_workers > 0 ? config_.min_workers
                                          : std::max<size_t>(1, config_.worker_hosts.size());
  // Every WORKER_HOSTS entry must have answered before shards are placed, so that
  // a slow-starting worker still gets its share.
  bool hosts_known = true;
  for (const auto& w : map_.workers()) hosts_known = hosts_known && !w.id.empty();
  if (known < needed || !hosts_known) {
    spdlog::info("waiting for workers before placing shards: {} of {} known", known, needed);
    return;
  }
  map_.AssignRoundRobin();
  spdlog::info("placed {} shards on {} workers", map_.num_shards(), known);
}

Status WorkerPool::PersistLocked() { return map_.Save(map_path_); }

void WorkerPool::HealthLoop() {
  for (;;) {
    // A check that changed the map (a worker told us its id, shards were placed)
    // is followed at once by another, so every worker learns the new map quickly.
    for (int i = 0; i < 3 && CheckAll(); ++i) {
    }
    std::unique_lock<std::mutex> lock(stop_mu_);
    if (stop_cv_.wait_for(lock, std::chrono::milliseconds(config_.health_interval_ms),
                          [this] { return stopping_ || push_now_; }) &&
        stopping_) {
      return;
    }
    push_now_ = false;
  }
}

bool WorkerPool::CheckAll() {
  ClusterMap map = Snapshot();
  std::string body = map.ToJson().dump();
  std::vector<std::pair<std::string, std::future<Result<HttpResponse>>>> calls;
  for (const auto& w : map.workers()) {
    OutgoingRequest req;
    req.method = "POST";
    req.target = "/internal/map";
    req.content_type = "application/json";
    req.body = body;
    req.headers = InternalHeaders(config_.cluster_secret);
    calls.emplace_back(w.address, client_.Start(w.address, std::move(req),
                                                std::chrono::milliseconds(std::max(200, config_.health_interval_ms))));
  }
  for (auto& [address, fut] : calls) {
    auto resp = fut.get();
    nlohmann::json report;
    bool ok = resp.ok() && resp->status == 200;
    if (ok) {
      report = nlohmann::json::parse(resp->body, nullptr, false);
      ok = report.is_object() && report.contains("node_id") && report["node_id"].is_string();
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto& h = health_[address];
    if (ok != h.healthy) {
      spdlog::log(ok ? spdlog::level::info : spdlog::level::warn, "worker at {} is {}", address,
                  ok ? "up" : "down");
    }
    h.healthy = ok;
    if (!ok) continue;
    h.last_ok_us = NowMicros();
    h.last_report = report;
    const std::string id = report["node_id"].get<std::string>();
    // Leaders of replicated shards, as the worker sees its groups.
    if (report.contains("raft_status") && report["raft_status"].contains("groups")) {
      for (const auto& g : report["raft_status"]["groups"]) {
        if (g.value("role", "") == "leader") leaders_[g.value("shard", 0u)] = id;
      }
    }
    // A WORKER_HOSTS entry learns its id from the worker itself; Raft addresses
    // come the same way.
    bool changed = map_.UpsertWorker(id, address);
    if (report.contains("raft_address") && report["raft_address"].is_string() &&
        !report["raft_address"].get<std::string>().empty()) {
      changed |= map_.SetRaftAddress(id, report["raft_address"].get<std::string>());
    }
    if (changed) {
      MaybeAssignLocked();
      Status s = PersistLocked();
      if (!s.ok()) spdlog::error("cannot persist cluster map: {}", s.ToString());
    }
  }
  return Snapshot().version() != map.version();
}

}  // namespace rm
