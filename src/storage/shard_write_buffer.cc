// ShardStore's write buffer: commands acknowledged before DuckDB has them
// (from the synced command log, or from Raft's log), staged in memory and
// written to DuckDB in whole row groups, before any read, or at a clean stop;
// and the replay of the command log at open.
#include "src/storage/shard_store.h"

#include "src/storage/shard_store_internal.h"

#include "src/storage/file_sync.h"
#include "src/storage/hourly_rollup.h"
#include "src/storage/snapshot_bundle.h"
#include "src/storage/sql_filters.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>

namespace rm {

bool ShardStore::BufferWritesLocked() const {
  if (options_.write_buffer_points == 0 || !writer_) return false;
  if (options_.free_disk_bytes) return options_.free_disk_bytes(dir_) >= options_.write_buffer_min_free_bytes;
  struct statvfs st;
  if (::statvfs(dir_.c_str(), &st) != 0) return false;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize >= options_.write_buffer_min_free_bytes;
}

void ShardStore::StageGroupLocked(std::vector<GroupEntry*>& group, bool logged) {
  auto fail_all = [&](const Status& st) {
    for (auto* e : group) e->result = st;
  };
  // A buffer DuckDB keeps refusing (a failing disk) must not grow without end:
  // past twice its size, writes wait for the flush and fail with its error.
  if (buffered_points_ >= 2 * options_.write_buffer_points) {
    if (Status flushed = FlushLocked(); !flushed.ok()) return fail_all(flushed);
  }
  if (logged && !log_) {
    std::vector<CommandLog::Record> leftover;
    auto log = CommandLog::Open(path_ + kCommandLogSuffix, &leftover);
    if (!log.ok()) return fail_all(log.status());
    // Init replayed any earlier log into DuckDB, so what is left (a log that
    // could not be removed) holds only commands DuckDB has.
    for (const auto& r : leftover) {
      if (r.index > applied_index_) {
        return fail_all(Status(Code::kInternal, "command log holds commands DuckDB lacks",
                               {{"path", path_ + kCommandLogSuffix}, {"index", r.index}}));
      }
    }
    if (Status s = (*log)->Clear(); !s.ok()) return fail_all(s);
    log_ = std::move(*log);
  }
  // Each result now is what ApplyGroupLocked will decide at the flush: the same
  // keys (stored and buffered) checked in the same order.
  std::vector<ApplyOutcome> outcomes(group.size());
  std::vector<bool> keep(group.size(), false);  // goes into buffer_
  std::unordered_map<std::string, uint64_t> new_keys;
  std::vector<std::string> payloads(group.size());
  std::vector<std::pair<uint64_t, std::string_view>> records;
  records.reserve(group.size());
  uint64_t new_points = 0;
  uint64_t last_index = LastIndexLocked();
  for (size_t i = 0; i < group.size(); ++i) {
    const auto& command = *group[i]->command;
    ApplyOutcome& out = outcomes[i];
    if (!logged) {
      if (group[i]->index <= last_index) {
        out = {0, true};  // a replay of an applied entry
        continue;
      }
      last_index = group[i]->index;
    }
    const std::string& key = command.idempotency_key();
    if (!key.empty()) {
      if (auto it = keys_.find(key); it != keys_.end() && KeyLive(it->second, command)) {
        out = {it->second.stored, true};
      } else if (auto b = buffered_keys_.find(key); b != buffered_keys_.end()) {
        out = {b->second, true};
      } else if (auto n = new_keys.find(key); n != new_keys.end()) {
        out = {n->second, true};
      }
    }
    if (!out.duplicate) {
      for (const auto& series : command.series()) out.stored += static_cast<uint64_t>(series.values_size());
      new_points += out.stored;
      if (!key.empty()) new_keys.emplace(key, out.stored);
    }
    // A duplicate stores nothing, so it is not buffered (nor logged, and in
    // ApplyNext it takes no index): its outcome is final now (a later flush
    // might otherwise prune its key first).
    if (out.duplicate) continue;
    keep[i] = true;
    if (!logged) continue;
    group[i]->index = ++last_index;
    if (!command.SerializeToString(&payloads[i])) {
      return fail_all(Status(Code::kInternal, "cannot serialise a shard command"));
    }
    records.emplace_back(group[i]->index, payloads[i]);
  }

  if (!records.empty()) {
    if (Status s = log_->Append(records); !s.ok()) return fail_all(s);
  }
  // Synced (or in Raft's log): the commands are acknowledged from here on.
  for (size_t i = 0; i < group.size(); ++i) {
    if (keep[i]) {
      auto* movable = group[i]->movable;
      buffer_.push_back({group[i]->index, outcomes[i].stored, movable ? std::move(*movable) : *group[i]->command});
    }
    group[i]->result = outcomes[i];
  }
  buffered_keys_.merge(new_keys);
  buffered_points_ += new_points;
  buffered_commands_ = buffer_.size();
  buffered_index_ = last_index;
  // A failed flush keeps the commands buffered and logged: the next write or
  // read tries again.
  if (buffered_points_ >= options_.write_buffer_points) (void)FlushLocked(/*whole_row_groups=*/true);
}

Status ShardStore::FlushLocked(bool whole_row_groups) {
  if (buffer_.empty()) return RecordIndexLocked();
  size_t n = buffer_.size();
  uint64_t flushed_points = buffered_points_;
  // (A buffer smaller than a row group goes whole: there is nothing to fill.)
  if (whole_row_groups && buffered_points_ >= kDuckDBRowGroupRows) {
    const uint64_t target = buffered_points_ / kDuckDBRowGroupRows * kDuckDBRowGroupRows;
    n = 0;
    flushed_points = 0;
    while (n < buffer_.size() && (n == 0 || flushed_points + buffer_[n].points <= target)) {
      flushed_points += buffer_[n++].points;
    }
  }
  std::vector<GroupEntry> storage;
  storage.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    storage.push_back({&buffer_[i].command, buffer_[i].index, Status(Code::kInternal, "not applied"), false});
  }
  std::vector<GroupEntry*> group;
  group.reserve(storage.size());
  for (auto& g : storage) group.push_back(&g);
  ApplyGroupLocked(group);
  for (auto& g : storage) {
    if (!g.result.ok()) return g.result.status();  // one transaction: all failed alike
  }
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(n));
  buffered_points_ -= flushed_points;
  if (buffer_.empty()) {
    if (Status s = RecordIndexLocked(); !s.ok()) return s;
  }
  buffered_commands_ = buffer_.size();
  // The flushed keys are in keys_ now; the buffered ones are the rest's.
  buffered_keys_.clear();
  for (const auto& b : buffer_) {
    if (!b.command.idempotency_key().empty()) buffered_keys_.emplace(b.command.idempotency_key(), b.points);
  }
  if (!log_) return Status::Ok();
  if (buffer_.empty()) {
    // A log that cannot be emptied only holds commands DuckDB now has: a
    // replay skips them by index.
    (void)log_->Clear();
    return Status::Ok();
  }
  // What still waits must stay logged: the log is rewritten with only that.
  std::vector<std::string> payloads(buffer_.size());
  std::vector<std::pair<uint64_t, std::string_view>> records;
  records.reserve(buffer_.size());
  for (size_t i = 0; i < buffer_.size(); ++i) {
    if (!buffer_[i].command.SerializeToString(&payloads[i])) {
      return Status(Code::kInternal, "cannot serialise a shard command");
    }
    records.emplace_back(buffer_[i].index, payloads[i]);
  }
  // If this fails the old log stays, holding the flushed commands too: a
  // replay skips those by index.
  (void)log_->Rewrite(records);
  return Status::Ok();
}

Status ShardStore::Flush() {
  if (durable_index() >= applied_index()) return Status::Ok();
  std::lock_guard<std::mutex> write(write_mu_);
  return FlushLocked();
}

Status ShardStore::ReplayCommandLogLocked() {
  const std::string path = path_ + kCommandLogSuffix;
  auto records = CommandLog::ReadAll(path);
  if (!records.ok()) return records.status();
  for (auto& r : *records) {
    if (r.index <= LastIndexLocked()) continue;  // DuckDB has it (or a duplicate record)
    Buffered b{r.index, 0, {}};
    if (!b.command.ParseFromString(r.payload)) {
      return Status(Code::kStorage, "a command log record does not parse",
                    {{"storage_type", "duckdb"}, {"operation", "open"}, {"path", path}, {"index", r.index}});
    }
    for (const auto& series : b.command.series()) b.points += static_cast<uint64_t>(series.values_size());
    buffered_index_ = b.index;
    buffer_.push_back(std::move(b));
  }
  Status s = FlushLocked();
  if (!s.ok()) return s;
  // Every command is in DuckDB now; a log that stays only repeats them.
  std::error_code ec;
  std::filesystem::remove(path, ec);
  log_.reset();
  return Status::Ok();
}

}  // namespace rm
