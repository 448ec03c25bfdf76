#include "src/raft/shard_replica.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace rm::raft {

namespace {
// Outcomes kept for proposers that have not picked theirs up yet. A proposer
// learns its index before the entry can be applied far past it, so a window of
// this many entries is plenty.
constexpr uint64_t kOutcomeWindow = 4096;

// How long the snapshot callback may hold the Raft loop waiting for the apply
// thread to reach the snapshot's index before it gives up until a later entry.
constexpr auto kSnapshotWait = std::chrono::milliseconds(20);

// Most entries applied in one store transaction.
constexpr size_t kMaxApplyBatch = 64;

}  // namespace

ShardReplica::ShardReplica(RaftLoop& loop, RaftGroupOptions options, ShardStore& store, SnapshotFetcher fetcher)
    : store_(store), core_(store, options.id, std::move(fetcher)), group_(loop, std::move(options), *this) {
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

uint64_t ShardReplica::snapshots_installed() const { return core_.snapshots_installed(); }

Status ShardReplica::Apply(uint64_t index, std::string_view command) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({index, std::string(command)});
    enqueued_ = std::max(enqueued_, index);
  }
  cv_.notify_all();
  return Status::Ok();
}

Result<std::string> ShardReplica::Snapshot(uint64_t index) {
  std::unique_lock<std::mutex> lock(mu_);
  // The snapshot promises the state at Raft index `index`, and the log before it
  // is dropped, so every command up to it must be in the store's DuckDB file (a
  // restart then finds it there), not in its write buffer. Entries that are not
  // commands (barriers, configuration changes) never reach the store, so the
  // store's own index is the last command's, at most `index`. The loop is not
  // held for a flush: the apply thread does it, and libraft asks again after
  // its next apply.
  snapshot_wanted_ = true;
  cv_.notify_all();
  auto in_duckdb = [&] {
    return applied_ >= enqueued_ && store_.durable_index() >= store_.applied_index();
  };
  if (!cv_.wait_for(lock, kSnapshotWait, [&] { return in_duckdb() || !failure_.ok() || stopping_; }) ||
      !in_duckdb() || !failure_.ok()) {
    return Status(Code::kUnavailable, "the store has not written every entry up to the snapshot yet");
  }
  RM_CHECK(applied_ <= index, "shard store is ahead of the Raft log");
  snapshot_wanted_ = false;
  return core_.SnapshotPayload();
}

Status ShardReplica::Restore(std::string_view snapshot) {
  Result<ShardSnapshotRef> ref = ShardStateMachine::ParseSnapshot(snapshot);
  if (!ref.ok()) return ref.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({ref->index, "", true, ref->source_id});
    enqueued_ = std::max(enqueued_, ref->index);
  }
  cv_.notify_all();
  return Status::Ok();
}

void ShardReplica::InstallUpTo(const ShardSnapshotRef& ref) {
  auto delay = std::chrono::milliseconds(200);
  for (;;) {
    Status s = core_.CatchUp(ref);
    if (s.ok()) break;
    spdlog::warn("shard {}: cannot install a snapshot yet: {}; retrying", store_.shard(), s.ToString());
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, delay, [&] { return stopping_; })) return;
    delay = std::min(delay * 2, std::chrono::milliseconds(5000));
  }
  std::lock_guard<std::mutex> lock(mu_);
  applied_ = std::max(applied_, store_.applied_index());
}

void ShardReplica::FlushForSnapshot() {
  Status s = store_.Flush();
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok() && failure_.ok()) {
    // As for a failed apply: DuckDB refuses what Raft's log would have to keep.
    failure_ = s;
    spdlog::critical("shard {}: cannot write the buffered entries to DuckDB: {}; this replica stops applying until "
                     "restarted",
                     store_.shard(), s.ToString());
  }
  cv_.notify_all();
}

void ShardReplica::ApplyLoop() {
  for (;;) {
    // Every command entry waiting (up to kMaxApplyBatch) is applied in one store
    // transaction: under load the commit cost is shared; a snapshot install
    // ends a batch, since later entries build on it.
    std::vector<Item> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto must_flush = [&] { return snapshot_wanted_ && failure_.ok() && store_.durable_index() < store_.applied_index(); };
      cv_.wait(lock, [&] { return !queue_.empty() || stopping_ || must_flush(); });
      if (must_flush()) {
        lock.unlock();
        FlushForSnapshot();
        continue;
      }
      if (queue_.empty()) return;  // stopping, and everything committed is applied
      if (!failure_.ok()) {
        queue_.clear();
        continue;
      }
      do {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      } while (!batch.front().install && !queue_.empty() && !queue_.front().install &&
               batch.size() < kMaxApplyBatch);
    }
    if (batch.front().install) {
      InstallUpTo({batch.front().index, batch.front().source_id});
      cv_.notify_all();
      continue;
    }
    std::vector<ShardStateMachine::LogEntry> entries;
    for (const auto& item : batch) entries.push_back({item.index, item.command});
    bool may_buffer;
    {
      std::lock_guard<std::mutex> lock(mu_);
      may_buffer = !snapshot_wanted_;
    }
    std::vector<Result<ApplyOutcome>> outcomes = core_.ApplyEntries(entries, may_buffer);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < outcomes.size(); ++i) {
        const uint64_t index = batch[i].index;
        if (!outcomes[i].ok()) {
          if (failure_.ok()) {
            failure_ = outcomes[i].status();
            spdlog::critical("shard {}: cannot apply Raft entry {}: {}; this replica stops applying until restarted",
                             store_.shard(), index, outcomes[i].status().ToString());
          }
        } else {
          applied_ = std::max(applied_, index);
        }
        outcomes_.emplace(index, std::move(outcomes[i]));
      }
      while (!outcomes_.empty() && outcomes_.begin()->first + kOutcomeWindow < batch.back().index) {
        outcomes_.erase(outcomes_.begin());
      }
    }
    cv_.notify_all();
  }
}

Status ShardReplica::AddVoter(uint64_t id, const std::string& address, std::chrono::milliseconds timeout) {
  return AwaitChange(group_.AddVoter(id, address), timeout, "adding replica " + std::to_string(id));
}

Status ShardReplica::RemoveMember(uint64_t id, std::chrono::milliseconds timeout) {
  return AwaitChange(group_.RemoveMember(id), timeout, "removing replica " + std::to_string(id));
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
