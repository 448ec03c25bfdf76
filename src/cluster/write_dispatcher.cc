#include "src/cluster/write_dispatcher.h"

#include "src/common/time_util.h"
#include "src/partition/partitioner.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <random>
#include <set>
#include <thread>

namespace rm {

bool WriteSummary::all_ok() const {
  for (const auto& s : shards) {
    if (!s.ok) return false;
  }
  return true;
}

Status WriteSummary::FailureStatus(const std::string& idempotency_key) const {
  nlohmann::json failed = nlohmann::json::array();
  nlohmann::json stored = nlohmann::json::array();
  bool all_full = true, all_storage = true, any_raft = false;
  uint64_t term = 0;
  uint64_t available = UINT64_MAX;
  for (const auto& s : shards) {
    if (s.ok) {
      stored.push_back(s.shard);
    } else {
      failed.push_back({{"shard", s.shard}, {"worker_node", s.worker_id}, {"points", s.points},
                        {"reason", s.error.message()}});
      if (!s.attempts.empty()) failed.back()["attempts"] = s.attempts;
      all_full &= s.error.code() == Code::kStorageFull;
      any_raft |= s.error.code() == Code::kRaft || (replication_factor > 1 && s.error_code == "UNREACHABLE");
      term = std::max(term, s.term);
      all_storage &= s.error.code() == Code::kStorage || s.error.code() == Code::kStorageFull;
      if (s.error.code() == Code::kStorageFull && s.error.details().contains("available_bytes")) {
        available = std::min(available, s.error.details()["available_bytes"].get<uint64_t>());
      }
    }
  }
  nlohmann::json details = {{"stored_points", stored_points},
                            {"total_points", total_points},
                            {"stored_shards", stored},
                            {"failed_shards", failed},
                            {"idempotency_key", idempotency_key}};
  // A full disk or a failing DuckDB is not cured by retrying at once: say what
  // broke (seed 001's storage error) instead of asking for a retry.
  if (all_full || all_storage) {
    details["storage_type"] = "duckdb";
    details["operation"] = "insert";
    details["reason"] = all_full ? "disk_full" : "storage_failure";
    if (all_full && available != UINT64_MAX) details["available_space"] = FormatBytes(available);
    return Status(all_full ? Code::kStorageFull : Code::kStorage, "Failed to write data", std::move(details));
  }
  details["retry_after"] = "1s";
  if (any_raft) {
    // Seed 001's consensus error: what a quorum needs and what is there.
    // Without the caller's view: a lower bound, the workers that answered this write at all.
    std::set<std::string> answered;
    for (const auto& s : shards) {
      if (s.ok || s.error_code != "UNREACHABLE") answered.insert(s.worker_id);
    }
    details["term"] = std::max(term, known_term);
    details["required_nodes"] = replication_factor / 2 + 1;
    details["available_nodes"] =
        available_nodes >= 0 ? available_nodes : std::min<int64_t>(answered.size(), replication_factor);
    details["replication_factor"] = replication_factor;
    return Status(Code::kRaft, "Failed to achieve consensus; retry with the same Idempotency-Key", std::move(details));
  }
  return Status(Code::kUnavailable, "Some shards could not store the write; retry with the same Idempotency-Key",
                std::move(details));
}

std::string WriteSummary::DescribeFailures() const {
  std::string out;
  for (const auto& s : shards) {
    if (s.ok) continue;
    out += (out.empty() ? "" : " | ") + ("shard " + std::to_string(s.shard)) + " at " + s.worker_id + ": " +
           s.error.ToString();
    if (!s.attempts.empty()) out += " (tried " + s.attempts + ")";
  }
  return out;
}

std::string AutoIdempotencyKey(const std::string& node_id) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t nonce = std::random_device{}() * 0x9E3779B97F4A7C15ull ^
                                static_cast<uint64_t>(NowMicros());
  return "auto:" + node_id + ":" + std::to_string(nonce) + ":" + std::to_string(++counter);
}

std::vector<std::pair<std::string, std::string>> InternalHeaders(const std::string& cluster_secret) {
  std::vector<std::pair<std::string, std::string>> headers = {{"X-RaftMetrics-Internal", "1"}};
  if (!cluster_secret.empty()) headers.emplace_back("Authorization", "Bearer " + cluster_secret);
  return headers;
}

WriteSummary DispatchWrites(const ClusterMap& map,
                            std::map<uint32_t, raftmetrics::v1::ShardCommand> commands,
                            WriteSender& sender, std::chrono::milliseconds timeout,
                            const std::string& self_id, const LocalApply& apply_local, const RouteFn& route, const LeaderFn& learned_leader,
                            const HealthFn& healthy) {
  WriteSummary summary;
  summary.replication_factor = map.replication_factor();
  std::map<uint32_t, size_t> index;                // shard -> position in summary.shards
  std::map<uint32_t, const WorkerInfo*> target;    // shard -> worker to send to this round
  for (auto& [shard, cmd] : commands) {
    ShardWriteOutcome o;
    o.shard = shard;
    o.points = PointCount(cmd);
    summary.total_points += o.points;
    const WorkerInfo* to = route ? route(shard) : nullptr;
    if (!to) to = map.Owner(shard);
    if (!to) {
      o.error = Status(Code::kUnavailable, "shard has no worker yet (cluster not ready)");
    } else {
      target[shard] = to;
    }
    index[shard] = summary.shards.size();
    summary.shards.push_back(std::move(o));
  }

  std::map<uint32_t, std::string> hint;  // shard -> leader named by a NOT_LEADER answer
  auto record = [&](const raftmetrics::v1::ShardWriteResult& r) {
    auto it = index.find(r.shard());
    if (it == index.end()) return;
    auto& o = summary.shards[it->second];
    o.ok = r.ok();
    o.stored = r.stored();
    o.duplicate = r.duplicate();
    o.error_code = r.ok() ? "" : r.error_code();
    o.term = r.term();
    if (!r.ok()) {
      if (r.disk_full()) {
        o.error = Status(Code::kStorageFull, r.error(), {{"available_bytes", r.available_bytes()}});
      } else if (r.error_code() == "NOT_LEADER" || r.error_code() == "RAFT_ERROR") {
        o.error = Status(Code::kRaft, r.error());
        if (!r.leader_hint().empty()) hint[r.shard()] = r.leader_hint();
      } else {
        o.error = Status(r.error_code() == "STORAGE_ERROR" ? Code::kStorage : Code::kUnavailable, r.error());
      }
    }
  };

  // Rounds until every shard answered or the deadline passed: a replica that is
  // not the leader names it (next round goes there at once); during an election
  // nobody is named, so the next replica is tried after a short pause. Commands
  // carry idempotency keys, so sending one again never stores it twice.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int round = 0; round < 32 && !target.empty(); ++round) {
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (round > 0 && remaining < std::chrono::milliseconds(20)) break;
    std::map<std::string, raftmetrics::v1::ShardWriteRequest> by_worker;  // worker id -> request
    for (const auto& [shard, to] : target) {
      summary.shards[index[shard]].worker_id = to->id;
      *by_worker[to->id].add_commands() = commands[shard];
    }
    std::vector<std::pair<std::string, std::future<Result<raftmetrics::v1::ShardWriteResponse>>>> pending;
    for (auto& [worker_id, req] : by_worker) {
      if (worker_id == self_id && apply_local) continue;
      pending.emplace_back(worker_id, sender.Send(map.FindWorker(worker_id)->address, std::move(req),
                                                  round == 0 ? timeout : remaining));
    }
    if (auto self = by_worker.find(self_id); self != by_worker.end() && apply_local) {
      for (const auto& cmd : self->second.commands()) record(apply_local(cmd));
    }
    for (auto& [worker_id, fut] : pending) {
      Result<raftmetrics::v1::ShardWriteResponse> answer = fut.get();
      if (answer.ok()) {
        for (const auto& r : answer->results()) record(r);
        continue;
      }
      const Status& failure = answer.status();
      for (const auto& [shard, to] : target) {
        if (to->id != worker_id) continue;
        auto& o = summary.shards[index[shard]];
        o.ok = false;
        o.error = failure;
        o.error_code = "UNREACHABLE";
      }
    }
    std::map<uint32_t, const WorkerInfo*> next;
    bool pause = false;
    for (const auto& [shard, to] : target) {
      auto& o = summary.shards[index[shard]];
      if (o.ok) continue;
      auto h = hint.find(shard);
      if (o.attempts.size() < 1024) {
        o.attempts += (o.attempts.empty() ? "" : "; ") + to->id + " " + (o.error_code.empty() ? "FAILED" : o.error_code);
        if (h != hint.end()) o.attempts += " -> " + h->second;
      }
      auto up = [&](const WorkerInfo* w) { return !healthy || healthy(*w); };
      if (o.error_code == "NOT_LEADER" && h != hint.end() && h->second != to->id) {
        if (const WorkerInfo* leader = map.FindWorker(h->second); leader && up(leader)) {
          next[shard] = leader;
          if (learned_leader) learned_leader(shard, leader->id);
          continue;
        }
      }
      // No leader named, or its worker is down: with replicas, try the next one.
      const auto replicas = map.Replicas(shard);
      if (replicas.size() < 2 || (o.error_code != "NOT_LEADER" && o.error_code != "UNREACHABLE")) continue;
      size_t at = 0;
      while (at < replicas.size() && replicas[at]->id != to->id) ++at;
      const WorkerInfo* pick = replicas[(at + 1) % replicas.size()];
      for (size_t step = 1; step < replicas.size(); ++step) {  // the next healthy one, if any
        const WorkerInfo* r = replicas[(at + step) % replicas.size()];
        if (r->id != to->id && up(r)) {
          pick = r;
          break;
        }
      }
      next[shard] = pick;
      pause = true;
    }
    hint.clear();
    target.swap(next);
    if (pause && !target.empty()) {
      auto wait = std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(100),
                                                                 deadline - std::chrono::steady_clock::now());
      if (wait > std::chrono::steady_clock::duration::zero()) std::this_thread::sleep_for(wait);
    }
  }
  for (auto& o : summary.shards) {
    if (!o.ok && o.error.ok()) {
      o.error = Status(Code::kUnavailable, "worker " + o.worker_id + " did not report this shard");
    }
    if (o.ok) summary.stored_points += o.stored;
  }
  return summary;
}

}  // namespace rm
