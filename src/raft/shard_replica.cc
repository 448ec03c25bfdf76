#include "src/raft/shard_replica.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace rm::raft {

namespace {
// Outcomes kept for proposers that have not picked theirs up yet. A proposer
// learns its index before the entry can be applied far past it, so a window of
// this many entries is plenty.
constexpr uint64_t kOutcomeWindow = 4096;
}  // namespace

ShardReplica::ShardReplica(RaftLoop& loop, RaftGroupOptions options, ShardStore& store)
    : store_(store), group_(loop, std::move(options), *this) {
  applied_ = store_.applied_index();
  applier_ = std::thread([this] { ApplyLoop(); });
}

ShardReplica::~ShardReplica() { Close(); }

Status ShardReplica::Start(const std::vector<RaftPeer>& bootstrap) { return group_.Start(bootstrap); }

void ShardReplica::Close() {
  group_.Close();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (applier_.joinable()) applier_.join();
}

uint64_t ShardReplica::applied_index() const {
  std::lock_guard<std::mutex> lock(mu_);
  return applied_;
}

Status ShardReplica::Apply(uint64_t index, std::string_view command) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.emplace_back(index, std::string(command));
    enqueued_ = std::max(enqueued_, index);
  }
  cv_.notify_all();
  return Status::Ok();
}

void ShardReplica::ApplyLoop() {
  for (;;) {
    std::pair<uint64_t, std::string> entry;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything committed is applied
      if (!failure_.ok()) {
        queue_.clear();
        continue;
      }
      entry = std::move(queue_.front());
      queue_.pop_front();
    }
    raftmetrics::v1::ShardCommand command;
    Result<ApplyOutcome> outcome = Status(Code::kInternal, "not applied");
    if (!command.ParseFromString(entry.second)) {
      outcome = Status(Code::kInternal, "log entry " + std::to_string(entry.first) + " is not a ShardCommand");
    } else {
      outcome = store_.Apply(command, entry.first);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!outcome.ok()) {
        failure_ = outcome.status();
        spdlog::critical("shard {}: cannot apply Raft entry {}: {}; this replica stops applying until restarted",
                         store_.shard(), entry.first, outcome.status().ToString());
      } else {
        applied_ = std::max(applied_, entry.first);
      }
      outcomes_.emplace(entry.first, std::move(outcome));
      while (!outcomes_.empty() && outcomes_.begin()->first + kOutcomeWindow < entry.first) {
        outcomes_.erase(outcomes_.begin());
      }
    }
    cv_.notify_all();
  }
}

Status ShardReplica::ReadBarrier(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto fence = group_.Barrier();
  if (fence.wait_until(deadline) != std::future_status::ready) {
    return Status(Code::kTimeout, "no quorum confirmed the read in time");
  }
  Status s = fence.get();
  if (!s.ok()) return s;
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = enqueued_;
  if (!cv_.wait_until(lock, deadline, [&] { return applied_ >= target || !failure_.ok() || stopping_; })) {
    return Status(Code::kTimeout, "the store did not catch up in time");
  }
  return failure_.ok() ? Status::Ok() : failure_;
}

Result<ApplyOutcome> ShardReplica::Write(const raftmetrics::v1::ShardCommand& command,
                                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.ok()) return failure_;
  }
  auto proposed = group_.Propose(command.SerializeAsString());
  if (proposed.wait_until(deadline) != std::future_status::ready) {
    return Status(Code::kTimeout, "the write was not committed in time; it may still commit",
                  {{"timeout_ms", timeout.count()}});
  }
  Result<uint64_t> index = proposed.get();
  if (!index.ok()) return index.status();
  std::unique_lock<std::mutex> lock(mu_);
  bool done = cv_.wait_until(lock, deadline, [&] {
    return outcomes_.count(*index) > 0 || !failure_.ok() || stopping_;
  });
  auto it = outcomes_.find(*index);
  if (it == outcomes_.end()) {
    if (!failure_.ok()) return failure_;
    return Status(done ? Code::kUnavailable : Code::kTimeout, "committed but not applied here yet",
                  {{"index", *index}});
  }
  Result<ApplyOutcome> outcome = std::move(it->second);
  outcomes_.erase(it);
  return outcome;
}

}  // namespace rm::raft
