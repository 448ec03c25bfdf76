#include "src/control/worker_pool.h"

#include "src/cluster/write_dispatcher.h"
#include "src/common/time_util.h"

#include <spdlog/spdlog.h>

#include <future>

namespace rm {

namespace {
// A clock that never jumps (placement's settle time must not follow NTP steps).
int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

WorkerPool::WorkerPool(NodeConfig config, HttpClient& client)
    : config_(std::move(config)), client_(client), map_path_(config_.db_path + "/cluster_map.json") {}

WorkerPool::~WorkerPool() { Stop(); }

Status WorkerPool::Start() {
  auto loaded = ClusterMap::Load(map_path_);
  if (!loaded.ok()) return loaded.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (*loaded && (**loaded).version() >= map_.version()) {  // the meta group may have applied a newer one
      map_ = std::move(**loaded);
      if (map_.num_shards() != config_.shards) {
        spdlog::warn("cluster map has {} shards; --shards={} ignored (the shard count is fixed "
                     "for the life of a cluster)", map_.num_shards(), config_.shards);
      }
    } else if (!*loaded && map_.num_shards() == 0) {
      map_ = ClusterMap(config_.shards, config_.replication_factor);
    }
  }
  loop_ = std::thread([this] { HealthLoop(); });
  return Status::Ok();
}

void WorkerPool::SetCommitter(Committer commit, std::function<bool()> needs_seed) {
  std::lock_guard<std::mutex> lock(mutate_mu_);
  commit_ = std::move(commit);
  needs_seed_ = std::move(needs_seed);
}

void WorkerPool::AdoptMap(const ClusterMap& map) {
  std::lock_guard<std::mutex> lock(mu_);
  map_ = map;
  Status s = PersistLocked();
  if (!s.ok()) spdlog::warn("cannot cache the cluster map: {}", s.ToString());
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
  if (Snapshot().removed(id)) {
    return Status(Code::kValidation, "Invalid request parameters",
                  {{"fields", {{{"field", "id"},
                                {"error", "worker " + id + " was decommissioned; a node that comes back needs a new "
                                          "id and an empty DB_PATH"}}}}});
  }
  auto after = UpdateMap([&](ClusterMap& m) {
    const bool known = m.FindWorker(id) != nullptr;
    if (!m.UpsertWorker(id, address)) return false;
    spdlog::info("worker {} at {} registered", id, address);
    if (!known) last_new_worker_us_.store(SteadyMicros());
    MaybeAssign(m);
    return true;
  });
  if (!after.ok()) return after.status();
  return after->version();
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

bool WorkerPool::Healthy(const WorkerInfo& worker) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = health_.find(worker.address);
  return it == health_.end() || it->second.healthy;
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

namespace {
// The Raft groups a worker listed in its last /health report (raft_status.groups).
struct ReportedGroup {
  uint32_t shard = 0;
  uint64_t term = 0;
  std::string role;
};
std::vector<ReportedGroup> GroupsInReport(const nlohmann::json& report) {
  std::vector<ReportedGroup> out;
  if (!report.is_object() || !report.contains("raft_status") || !report["raft_status"].is_object()) return out;
  for (const auto& g : report["raft_status"].value("groups", nlohmann::json::array())) {
    if (!g.is_object() || !g.contains("shard") || !g["shard"].is_number_unsigned()) continue;
    out.push_back({g["shard"].get<uint32_t>(), g.value("term", uint64_t{0}), g.value("role", std::string())});
  }
  return out;
}
}  // namespace

WorkerPool::QuorumView WorkerPool::Quorum(const ClusterMap& map, uint32_t shard) const {
  QuorumView view;
  auto replicas = map.Replicas(shard);
  std::lock_guard<std::mutex> lock(mu_);
  for (const WorkerInfo* w : replicas) {
    auto it = health_.find(w->address);
    if (it == health_.end()) continue;
    if (it->second.healthy) ++view.healthy_replicas;
    for (const auto& g : GroupsInReport(it->second.last_report)) {
      if (g.shard == shard) view.term = std::max(view.term, g.term);
    }
  }
  return view;
}

WorkerPool::Writability WorkerPool::WritableShards(const ClusterMap& map) const {
  Writability out;
  std::lock_guard<std::mutex> lock(mu_);
  auto healthy = [&](const WorkerInfo* w) {
    auto it = health_.find(w->address);
    return it != health_.end() && it->second.healthy;
  };
  for (uint32_t shard = 0; shard < map.num_shards(); ++shard) {
    auto replicas = map.Replicas(shard);
    bool any_healthy = false;
    bool leading = false;
    for (const WorkerInfo* w : replicas) {
      if (!healthy(w)) continue;
      any_healthy = true;
      const nlohmann::json& report = health_.find(w->address)->second.last_report;
      if (replicas.size() == 1) {
        // Its only replica takes writes once it has the map that placed the
        // shard there (the report answered a push of it, or a later one).
        leading |= report.is_object() && report.value("cluster_map_version", uint64_t{0}) >= map.version();
        continue;
      }
      for (const auto& g : GroupsInReport(report)) {
        leading |= g.shard == shard && g.role == "leader";
      }
    }
    if (leading) {
      ++out.writable;
    } else if (any_healthy) {
      out.leaderless.push_back(shard);
    } else {
      out.unreachable.push_back(shard);
    }
  }
  return out;
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
  // One change at a time, each made on a copy of the current map: through the
  // meta group when there is one (it adopts the map on every control node as
  // the entry applies), else directly.
  std::lock_guard<std::mutex> serial(mutate_mu_);
  ClusterMap after = Snapshot();
  if (!change(after)) return after;
  if (commit_) {
    Status s = commit_(after);
    if (!s.ok()) return s;
  } else {
    AdoptMap(after);
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
  for (const auto& g : GroupsInReport(it->second.last_report)) shards.insert(g.shard);
  return shards;
}

void WorkerPool::MaybeAssign(ClusterMap& map) const {
  if (map.assigned()) return;
  size_t known = 0;
  for (const auto& w : map.workers()) known += w.id.empty() ? 0 : 1;
  size_t needed = config_.min_workers > 0 ? config_.min_workers
                                          : std::max<size_t>(1, config_.worker_hosts.size());
  // Every WORKER_HOSTS entry must have answered before shards are placed, so that
  // a slow-starting worker still gets its share.
  bool hosts_known = true;
  for (const auto& w : map.workers()) hosts_known = hosts_known && !w.id.empty();
  if (known < needed || !hosts_known) {
    if (known != waiting_logged_.exchange(known)) {
      spdlog::info("waiting for workers before placing shards: {} of {} known", known, needed);
    }
    return;
  }
  // Workers that find the control node themselves (CONTROL_HOST), with no
  // count to wait for, usually start together: shards are placed once none has
  // registered for kPlacementSettle, not on the first one alone.
  if (config_.worker_hosts.empty() && config_.min_workers == 0 &&
      SteadyMicros() - last_new_worker_us_.load() < kPlacementSettleUs) {
    return;
  }
  map.AssignRoundRobin();
  spdlog::info("placed {} shards on {} workers", map.num_shards(), known);
}

Status WorkerPool::PersistLocked() { return map_.Save(map_path_); }

void WorkerPool::HealthLoop() {
  for (;;) {
    // A check that changed the map (a worker told us its id, shards were placed)
    // is followed at once by another, so every worker learns the new map quickly.
    for (int i = 0; i < 3 && CheckAll(); ++i) {
    }
    // Until shards are placed, workers that are still starting are looked for
    // every 100 ms: a new cluster serves as soon as its workers listen.
    const int interval_ms = Snapshot().assigned() ? config_.health_interval_ms
                                                  : std::min(config_.health_interval_ms, 100);
    std::unique_lock<std::mutex> lock(stop_mu_);
    if (stop_cv_.wait_for(lock, std::chrono::milliseconds(interval_ms),
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
  // A worker that left the map since the last push may have missed the map
  // that removed it (two changes committed between pushes): it keeps getting
  // pushes until one is answered, at most 50.
  std::vector<std::string> now;
  for (const auto& w : map.workers()) now.push_back(w.address);
  for (const auto& a : pushed_to_) {
    if (std::find(now.begin(), now.end(), a) == now.end()) leaving_.emplace(a, 50);
  }
  pushed_to_ = now;
  for (auto it = leaving_.begin(); it != leaving_.end();) {
    if (std::find(now.begin(), now.end(), it->first) != now.end() || it->second-- <= 0) {
      it = leaving_.erase(it);
      continue;
    }
    OutgoingRequest req;
    req.method = "POST";
    req.target = "/internal/map";
    req.content_type = "application/json";
    req.body = body;
    req.headers = InternalHeaders(config_.cluster_secret);
    auto resp = client_.Start(it->first, std::move(req), std::chrono::milliseconds(500)).get();
    it = resp.ok() && resp->status == 200 ? leaving_.erase(it) : std::next(it);
  }
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
  std::vector<std::tuple<std::string, std::string, std::string>> learned;  // id, address, raft address
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
    for (const auto& g : GroupsInReport(report)) {
      if (g.role == "leader") leaders_[g.shard] = id;
    }
    const std::string raft_address =
        report.contains("raft_address") && report["raft_address"].is_string() ? report["raft_address"].get<std::string>()
                                                                               : "";
    learned.emplace_back(id, address, raft_address);
  }
  // A WORKER_HOSTS entry learns its id from the worker itself; Raft addresses
  // come the same way. Only the meta leader changes the map (elsewhere this
  // fails). A meta group that holds no map yet gets this node's (cached) one.
  const bool seed = needs_seed_ && needs_seed_();
  bool hosts_missing = false;
  for (const auto& host : config_.worker_hosts) {
    bool known = false;
    for (const auto& w : map.workers()) known |= w.address == NormalizeAddress(host);
    hosts_missing |= !known;
  }
  if (!learned.empty() || seed || hosts_missing) {
    auto after = UpdateMap([&](ClusterMap& m) {
      bool changed = seed;
      for (const auto& host : config_.worker_hosts) changed |= m.UpsertWorker("", host);
      for (const auto& [id, address, raft_address] : learned) {
        if (!m.FindWorker(id)) last_new_worker_us_.store(SteadyMicros());
        changed |= m.UpsertWorker(id, address);
        if (!raft_address.empty()) changed |= m.SetRaftAddress(id, raft_address);
      }
      if (!m.assigned()) {
        MaybeAssign(m);
        changed |= m.assigned();
      }
      return changed;
    });
    if (!after.ok()) spdlog::debug("cluster map not updated here: {}", after.status().ToString());
  }
  return Snapshot().version() != map.version();
}

}  // namespace rm
