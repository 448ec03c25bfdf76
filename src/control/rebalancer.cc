#include "src/control/rebalancer.h"

#include "src/cluster/placement.h"
#include "src/cluster/write_dispatcher.h"
#include "src/common/time_util.h"

#include <spdlog/spdlog.h>

namespace rm {

Rebalancer::Rebalancer(NodeConfig config, WorkerPool& pool, HttpClient& client, std::function<bool()> may_act)
    : config_(std::move(config)), pool_(pool), client_(client), may_act_(std::move(may_act)), started_us_(NowMicros()) {}

Rebalancer::~Rebalancer() { Stop(); }

void Rebalancer::Start() {
  loop_ = std::thread([this] { Loop(); });
}

void Rebalancer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (loop_.joinable()) loop_.join();
}

void Rebalancer::Poke() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

nlohmann::json Rebalancer::StatusJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"moves_done", moves_done_}, {"current_move", current_}, {"last_error", last_error_}};
}

bool Rebalancer::WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)),
                       [this] { return stopping_; }) ||
        std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
  }
}

bool Rebalancer::SleepUnlessStopping(std::chrono::milliseconds pause) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, pause, [this] { return stopping_; });
}

void Rebalancer::Loop() {
  const auto idle = std::chrono::milliseconds(std::max(500, 2 * config_.health_interval_ms));
  for (;;) {
    bool busy = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      poked_ = false;
    }
    busy = RunOnce();
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, busy ? std::chrono::milliseconds(50) : idle, [this] { return stopping_ || poked_; }) &&
        stopping_) {
      return;
    }
  }
}

bool Rebalancer::RunOnce() {
  if (may_act_ && !may_act_()) return false;
  ClusterMap map = pool_.Snapshot();
  if (!map.assigned() || map.replication_factor() < 2) return false;
  PlacementInput input;
  const int64_t now = NowMicros();
  const auto health = pool_.Health();
  for (const auto& w : map.workers()) {
    auto it = health.find(w.address);
    const bool healthy = it != health.end() && it->second.healthy;
    if (healthy) input.healthy.insert(w.id);
    if (!healthy && config_.replace_dead_after_s > 0) {
      // Never seen healthy: count from when this control node started.
      const int64_t since = it != health.end() && it->second.last_ok_us > 0 ? it->second.last_ok_us : started_us_;
      if (now - since > int64_t{config_.replace_dead_after_s} * 1000000) input.dead.insert(w.id);
    }
  }
  auto move = PlanNextMove(map, input);
  if (!move) {
    // Decommissioned workers that hold nothing any more leave the map.
    for (const auto& w : map.workers()) {
      if (!map.decommissioning(w.id) || !map.HostedBy(w.id).empty()) continue;
      auto after = pool_.UpdateMap([&](ClusterMap& m) { return m.RemoveWorker(w.id).ok(); });
      if (after.ok()) spdlog::info("worker {} is decommissioned: it holds no replica and left the cluster map", w.id);
    }
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = {{"shard", move->shard}, {"from", move->from}, {"to", move->to}, {"reason", move->reason}};
  }
  spdlog::info("moving shard {} from {} to {} ({})", move->shard, move->from, move->to, move->reason);
  Status s = Execute(*move);
  std::lock_guard<std::mutex> lock(mu_);
  current_ = nullptr;
  if (s.ok()) {
    ++moves_done_;
    last_error_.clear();
    spdlog::info("shard {} moved from {} to {}", move->shard, move->from, move->to);
    return true;
  }
  last_error_ = "shard " + std::to_string(move->shard) + ": " + s.ToString();
  spdlog::warn("moving shard {} from {} to {} not done yet: {}", move->shard, move->from, move->to, s.ToString());
  return false;
}

Status Rebalancer::Execute(const ReplicaMove& move) {
  // 1. Record it: the target starts an empty replica when it gets the map.
  auto map = pool_.UpdateMap([&](ClusterMap& m) { return m.PendingMove(move.shard) ? false : m.BeginMove(move); });
  if (!map.ok()) return map.status();
  const WorkerInfo* to = map->FindWorker(move.to);
  const WorkerInfo* from = map->FindWorker(move.from);
  if (!to || !from) return Status(Code::kInternal, "a worker of the move left the map");
  const uint64_t to_raft_id = to->raft_id, from_raft_id = from->raft_id;
  const std::string to_raft_address = to->raft_address;
  if (!WaitFor([&] { return pool_.ReportedGroups(move.to).count(move.shard) > 0; }, std::chrono::seconds(20))) {
    return Status(Code::kTimeout, move.to + " has not started its replica of the shard");
  }
  // 2. Add and promote (the library lets it catch up first).
  Status s = ChangeMembers(move.shard, {{"shard", move.shard}, {"op", "add"}, {"raft_id", to_raft_id},
                                        {"address", to_raft_address}});
  if (!s.ok()) return s;
  // 3. Remove the old replica.
  s = ChangeMembers(move.shard, {{"shard", move.shard}, {"op", "remove"}, {"raft_id", from_raft_id}});
  if (!s.ok()) return s;
  // 4. Done: the map follows the group.
  auto done = pool_.UpdateMap([&](ClusterMap& m) {
    if (!m.PendingMove(move.shard)) return false;
    m.CompleteMove(move.shard);
    return true;
  });
  return done.ok() ? Status::Ok() : done.status();
}

Status Rebalancer::ChangeMembers(uint32_t shard, const nlohmann::json& body) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  Status last(Code::kUnavailable, "no replica of the shard answered");
  std::string hint = pool_.LeaderHint(shard);
  while (std::chrono::steady_clock::now() < deadline) {
    ClusterMap map = pool_.Snapshot();
    // The leader hint first, then every member (the learner too: it may lead after the add).
    std::vector<std::string> order;
    if (!hint.empty()) order.push_back(hint);
    for (const WorkerInfo* w : map.Replicas(shard)) order.push_back(w->id);
    if (!map.Learner(shard).empty()) order.push_back(map.Learner(shard));
    hint.clear();
    for (const auto& id : order) {
      const WorkerInfo* w = map.FindWorker(id);
      if (!w) continue;
      OutgoingRequest req;
      req.method = "POST";
      req.target = "/internal/members";
      req.content_type = "application/json";
      req.body = body.dump();
      req.headers = InternalHeaders(config_.cluster_secret);
      auto resp = client_.Send(w->address, req, std::chrono::seconds(70));
      if (!resp.ok()) {
        last = resp.status();
        continue;
      }
      if (resp->status == 200) return Status::Ok();
      auto err = nlohmann::json::parse(resp->body, nullptr, false);
      last = Status(Code::kUnavailable, id + " answered HTTP " + std::to_string(resp->status) + ": " +
                                            (err.is_object() ? err.value("message", "") : resp->body.substr(0, 200)));
      // Not the leader: follow its hint (a Raft id) at once.
      if (err.is_object() && err.contains("details") && err["details"].is_object()) {
        const uint64_t leader = err["details"].value("leader_id", uint64_t{0});
        for (const auto& cand : map.workers()) {
          if (leader != 0 && cand.raft_id == leader) hint = cand.id;
        }
      }
      if (!hint.empty()) break;
    }
    if (hint.empty() && !SleepUnlessStopping(std::chrono::milliseconds(300))) {
      return Status(Code::kUnavailable, "stopping");
    }
  }
  return last;
}

}  // namespace rm
