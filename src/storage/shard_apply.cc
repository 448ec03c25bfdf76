// ShardStore, the state machine's step: applying commands in order, each
// group of them in one DuckDB transaction (series, points, rollup rows,
// idempotency keys and the applied index together), and compacting the rollup.
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

Result<ApplyOutcome> ShardStore::ApplyNext(const raftmetrics::v1::ShardCommand& command) {
  return std::move(ApplyNext(std::vector<const raftmetrics::v1::ShardCommand*>{&command}).front());
}

std::vector<Result<ApplyOutcome>> ShardStore::ApplyNext(
    const std::vector<const raftmetrics::v1::ShardCommand*>& commands) {
  // Group commit: commands that arrive while another group is being written wait,
  // and the first of them then writes all of them in one transaction (one WAL
  // sync). The cost of a commit is per transaction, not per point.
  std::vector<GroupEntry> mine;
  mine.reserve(commands.size());
  for (const auto* command : commands) mine.push_back({command, 0, Status(Code::kInternal, "not applied"), false});
  auto results = [&] {
    std::vector<Result<ApplyOutcome>> out;
    for (auto& e : mine) out.push_back(std::move(e.result));
    return out;
  };
  if (mine.empty()) return {};
  std::unique_lock<std::mutex> lock(group_mu_);
  for (auto& e : mine) group_queue_.push_back(&e);
  // Our entries are written together (one group takes the whole queue), so the
  // last one being done means all are.
  group_cv_.wait(lock, [&] { return mine.back().done || !group_running_; });
  if (mine.back().done) return results();
  group_running_ = true;
  std::vector<GroupEntry*> group;
  group.swap(group_queue_);
  lock.unlock();
  {
    std::lock_guard<std::mutex> write(write_mu_);
    const uint64_t first = LastIndexLocked() + 1;
    for (size_t i = 0; i < group.size(); ++i) group[i]->index = first + i;
    if (BufferWritesLocked()) {
      StageGroupLocked(group, /*logged=*/true);
    } else if (Status flushed = FlushLocked(); !flushed.ok()) {
      for (auto* e : group) e->result = flushed;  // DuckDB must get the buffer first, in order
    } else {
      ApplyGroupLocked(group);
    }
  }
  lock.lock();
  group_running_ = false;
  for (auto* e : group) e->done = true;
  group_cv_.notify_all();
  return results();
}

Result<ApplyOutcome> ShardStore::Apply(const raftmetrics::v1::ShardCommand& command, uint64_t index) {
  return std::move(ApplyBatch({{&command, index}}).front());
}

std::vector<Result<ApplyOutcome>> ShardStore::ApplyBatch(const std::vector<Entry>& entries, bool may_buffer) {
  std::vector<GroupEntry> storage;
  storage.reserve(entries.size());
  for (const auto& e : entries) {
    storage.push_back({e.command, e.index, Status(Code::kInternal, "not applied"), false, e.movable});
  }
  std::vector<GroupEntry*> group;
  for (auto& g : storage) group.push_back(&g);
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    // Raft's entries follow whatever ApplyNext logged before (a shard that got
    // replicas after running without them): that goes to DuckDB first, and
    // the command log is not used again.
    // Entries that write through (no buffering asked, or too little disk to
    // buffer) go after the buffered ones, which reach DuckDB first: DuckDB's
    // applied index must never pass an entry it does not hold.
    const bool buffer = may_buffer && BufferWritesLocked();
    Status flushed = (log_ || !buffer) ? FlushLocked() : Status::Ok();
    if (!flushed.ok()) {
      for (auto* e : group) e->result = flushed;
    } else if (buffer) {
      log_.reset();
      StageGroupLocked(group, /*logged=*/false);
    } else {
      ApplyGroupLocked(group);
    }
  }
  std::vector<Result<ApplyOutcome>> results;
  for (auto& g : storage) results.push_back(std::move(g.result));
  return results;
}

void ShardStore::ApplyGroupLocked(std::vector<GroupEntry*>& group) {
  if (!writer_) {
    for (auto* e : group) e->result = Status(Code::kStorage, "shard store is closed: reopening it after a snapshot install failed");
    return;
  }
  // What each command will do, decided before writing: replays and duplicate keys
  // store nothing; new series get dense ids in command order (deterministic on
  // every replica fed the same commands in the same order).
  struct Plan {
    bool replay = false;
    bool duplicate = false;
    uint64_t stored = 0;
  };
  std::vector<Plan> plans(group.size());
  std::vector<Series> new_series;
  std::unordered_map<std::string, int32_t> pending_series;
  std::unordered_map<std::string, uint64_t> pending_keys;  // key -> points stored in this group
  std::vector<int32_t> batch_series;
  std::vector<int64_t> batch_ts;
  std::vector<double> batch_values;
  db::ColumnBatch rollup;
  RollupBuilder rollup_builder;
  HourSpans new_spans;
  auto dirty_hours = rollup_dirty_hours_;
  uint64_t last_index = applied_index_;
  int64_t issued_us = 0;
  {
    std::shared_lock<std::shared_mutex> catalog(catalog_mu_);
    for (size_t i = 0; i < group.size(); ++i) {
      const auto& command = *group[i]->command;
      Plan& plan = plans[i];
      if (group[i]->index <= last_index) {
        plan.replay = true;  // replay of an applied entry
        continue;
      }
      last_index = group[i]->index;
      issued_us = std::max(issued_us, command.issued_us());
      const std::string& key = command.idempotency_key();
      if (!key.empty()) {
        if (auto it = keys_.find(key); it != keys_.end() && KeyLive(it->second, command)) {
          plan.duplicate = true;
          plan.stored = it->second.stored;
        } else if (auto p = pending_keys.find(key); p != pending_keys.end()) {
          plan.duplicate = true;
          plan.stored = p->second;
        }
      }
      if (plan.duplicate) continue;
      for (const auto& s : command.series()) {
        Tags tags(s.tags().begin(), s.tags().end());
        std::sort(tags.begin(), tags.end());
        std::string identity = SeriesIdentity(s.partition_key(), s.metric(), tags);
        int32_t id;
        if (auto it = series_by_identity_.find(identity); it != series_by_identity_.end()) {
          id = it->second;
        } else if (auto p = pending_series.find(identity); p != pending_series.end()) {
          id = p->second;
        } else {
          id = static_cast<int32_t>(series_.size() + new_series.size());
          pending_series.emplace(identity, id);
          new_series.push_back({id, s.metric(), s.partition_key(), std::move(tags)});
        }
        batch_series.insert(batch_series.end(), s.values_size(), id);
        batch_ts.insert(batch_ts.end(), s.timestamps_us().begin(), s.timestamps_us().end());
        batch_values.insert(batch_values.end(), s.values().begin(), s.values().end());
        rollup_builder.Add(id, s.timestamps_us().data(), s.values().data(), static_cast<size_t>(s.values_size()));
        plan.stored += static_cast<uint64_t>(s.values_size());
      }
      // One set of rollup rows per command (not per group): every replica appends
      // the same rows, however its applies were grouped.
      if (auto hours = rollup_builder.hours()) {
        dirty_hours = dirty_hours ? std::make_pair(std::min(dirty_hours->first, hours->first),
                                                   std::max(dirty_hours->second, hours->second))
                                  : *hours;
      }
      rollup_builder.AppendTo(rollup, &new_spans);
      if (!key.empty()) pending_keys.emplace(key, plan.stored);
    }
  }
  auto finish = [&](const Status& failure) {
    for (size_t i = 0; i < group.size(); ++i) {
      if (!failure.ok()) {
        group[i]->result = failure;
      } else {
        group[i]->result = ApplyOutcome{plans[i].replay ? 0 : plans[i].stored,
                                        plans[i].replay || plans[i].duplicate};
      }
    }
  };
  if (last_index == applied_index_) {  // every command was a replay
    finish(Status::Ok());
    return;
  }

  auto fail = [&](Status st) {
    (void)writer_->Execute("ROLLBACK");
    finish(st);
  };
  auto begin = writer_->QueryCached("BEGIN TRANSACTION");
  if (!begin.ok()) return finish(begin.status());
  if (!new_series.empty()) {
    std::vector<std::vector<db::Param>> rows;
    rows.reserve(new_series.size());
    for (const auto& ns : new_series) {
      nlohmann::json tags = nlohmann::json::object();
      for (const auto& [k, v] : ns.tags) tags[k] = v;
      rows.push_back({db::Param::Int(ns.id), db::Param::Text(ns.metric),
                      db::Param::Text(ns.partition_key), db::Param::Text(TagValue(ns.tags, "host")),
                      db::Param::Text(TagValue(ns.tags, "datacenter")), db::Param::Text(tags.dump())});
    }
    Status s = writer_->AppendRows("series", rows);
    if (!s.ok()) return fail(s);
  }
  const size_t stored_points = batch_values.size();
  uint64_t rollup_rows = rollup_rows_since_compaction_;
  if (stored_points > 0) {
    db::ColumnBatch points;
    points.columns = {std::move(batch_series), std::move(batch_ts), std::move(batch_values)};
    Status s = writer_->AppendColumns("points", points);
    if (!s.ok()) return fail(s);
    s = writer_->AppendColumns(kRollupTable, rollup);
    if (!s.ok()) return fail(s);
    rollup_rows += rollup.rows();
  }
  const bool prune = issued_us >= next_key_prune_us_;
  if (prune) {
    auto r = writer_->QueryCached("DELETE FROM applied_writes WHERE expires_us < ?", {db::Param::Int(issued_us)});
    if (!r.ok()) return fail(r.status());
  }
  for (size_t i = 0; i < group.size(); ++i) {
    const auto& command = *group[i]->command;
    if (plans[i].replay || plans[i].duplicate || command.idempotency_key().empty()) continue;
    auto r = writer_->QueryCached("INSERT INTO applied_writes VALUES (?, ?, ?)",
                                  {db::Param::Text(command.idempotency_key()),
                                   db::Param::Int(static_cast<int64_t>(plans[i].stored)),
                                   db::Param::Int(command.key_expires_us())});
    if (!r.ok()) return fail(r.status());
  }
  auto r = writer_->QueryCached("UPDATE shard_state SET applied_index = ? WHERE id = 0",
                                {db::Param::Int(static_cast<int64_t>(last_index))});
  if (!r.ok()) return fail(r.status());
  auto commit = writer_->QueryCached("COMMIT");
  if (!commit.ok()) return fail(commit.status());

  // Committed: publish to the in-memory state.
  applied_index_ = last_index;
  point_count_ += stored_points;
  rollup_rows_since_compaction_ = rollup_rows;
  rollup_dirty_hours_ = dirty_hours;
  hour_extents_.Widen(new_spans);
  if (prune) {
    for (auto it = keys_.begin(); it != keys_.end();) {
      it = it->second.expires_us < issued_us ? keys_.erase(it) : std::next(it);
    }
    next_key_prune_us_ = issued_us + kKeyPruneIntervalUs;
  }
  for (size_t i = 0; i < group.size(); ++i) {
    const auto& command = *group[i]->command;
    if (plans[i].replay || plans[i].duplicate || command.idempotency_key().empty()) continue;
    keys_[command.idempotency_key()] = {plans[i].stored, command.key_expires_us()};
  }
  if (!new_series.empty()) {
    std::unique_lock<std::shared_mutex> catalog(catalog_mu_);
    for (auto& ns : new_series) {
      series_by_identity_[SeriesIdentity(ns.partition_key, ns.metric, ns.tags)] = ns.id;
      series_.push_back(std::move(ns));
    }
  }
  hourly_totals_.AddCommitted(rollup);  // after the catalog: see hourly_totals_
  finish(Status::Ok());
  MaybeCompactRollupLocked();
}

Status ShardStore::RecordIndexLocked() {
  if (buffered_index_ <= applied_index_ || !writer_) return Status::Ok();
  auto r = writer_->QueryCached("UPDATE shard_state SET applied_index = ? WHERE id = 0",
                                {db::Param::Int(static_cast<int64_t>(buffered_index_.load()))});
  if (!r.ok()) return r.status();
  applied_index_ = buffered_index_.load();
  return Status::Ok();
}

void ShardStore::MaybeCompactRollupLocked() {
  if (rollup_rows_since_compaction_ < next_rollup_compaction_ || !rollup_dirty_hours_) return;
  // Its own transaction, after the apply committed: compaction changes how many
  // rollup rows there are, never what they add up to, so a failure or a crash
  // here costs only speed, never a write.
  bool done = false;
  if (writer_->QueryCached("BEGIN TRANSACTION").ok()) {
    auto compacted = CompactRollupLocked(*rollup_dirty_hours_, rollup_rows_since_compaction_);
    done = compacted.ok() && *compacted && writer_->QueryCached("COMMIT").ok();
    if (!done) (void)writer_->Execute("ROLLBACK");
  }
  if (done) {
    rollup_rows_since_compaction_ = 0;
    rollup_dirty_hours_.reset();
    next_rollup_compaction_ = kRollupCompactEvery;
  } else {
    // Mostly merged rows in the range (or a failure): try again after as many
    // new rows again.
    next_rollup_compaction_ = rollup_rows_since_compaction_ * 2;
  }
}

Result<bool> ShardStore::CompactRollupLocked(std::pair<int64_t, int64_t> hours, uint64_t unmerged_rows) {
  const std::vector<db::Param> range = {db::Param::Int(hours.first), db::Param::Int(hours.second)};
  auto count = writer_->QueryCached("SELECT count(*) FROM rollup_1h WHERE hour BETWEEN ? AND ?", range);
  if (!count.ok()) return count.status();
  // Rewriting the range costs its row count: do it only when at least a quarter
  // of those rows are new, so each row is rewritten a bounded number of times.
  if (static_cast<uint64_t>(count->Int(0, 0)) > 4 * unmerged_rows) return false;
  auto merged = writer_->QueryCached(
      "SELECT series_id, hour, sum(n)::BIGINT, sum(total), min(lo), max(hi), min(t0), max(t1) FROM rollup_1h "
      "WHERE hour BETWEEN ? AND ? GROUP BY series_id, hour ORDER BY hour, series_id",
      range);
  if (!merged.ok()) return merged.status();
  db::ColumnBatch rows = EmptyRollupBatch();
  for (size_t r = 0; r < merged->size(); ++r) {
    rows.col<int32_t>(0).push_back(static_cast<int32_t>(merged->Int(0, r)));
    rows.col<int64_t>(1).push_back(merged->Int(1, r));
    rows.col<int64_t>(2).push_back(merged->Int(2, r));
    for (size_t c = 3; c < 6; ++c) rows.col<double>(c).push_back(merged->Double(c, r));
    rows.col<int64_t>(6).push_back(merged->Int(6, r));
    rows.col<int64_t>(7).push_back(merged->Int(7, r));
  }
  auto erased = writer_->QueryCached("DELETE FROM rollup_1h WHERE hour BETWEEN ? AND ?", range);
  if (!erased.ok()) return erased.status();
  Status s = writer_->AppendColumns(kRollupTable, rows);
  if (!s.ok()) return s;
  return true;
}

}  // namespace rm
