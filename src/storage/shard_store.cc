#include "src/storage/shard_store.h"

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
namespace {

// How often expired idempotency keys are pruned (in command time).
constexpr int64_t kKeyPruneIntervalUs = 60LL * 1000000;
// The write buffer's command log, next to the shard's DuckDB file.
constexpr const char* kCommandLogSuffix = ".wlog";

std::string TagValue(const Tags& tags, const std::string& key) {
  for (const auto& [k, v] : tags) {
    if (k == key) return v;
  }
  return "";
}

Status SnapshotIoError(const std::string& what, const std::string& path) {
  return Status(Code::kStorage, "snapshot " + what + " failed for " + path + ": " + std::strerror(errno),
                {{"storage_type", "duckdb"}, {"operation", "snapshot"}, {"path", path}});
}

// Reads a whole file; a missing file is an empty optional.
Result<std::optional<std::string>> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::optional<std::string>();
    return SnapshotIoError("read", path);
  }
  std::ostringstream data;
  data << in.rdbuf();
  if (in.bad()) return SnapshotIoError("read", path);
  return std::optional<std::string>(std::move(data).str());
}

// Writes `data` to `path` and fsyncs it, so a rename afterwards never exposes
// a partly written file after a crash.
Status WriteFileSynced(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return SnapshotIoError("write", path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = SnapshotIoError("write", path);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = SnapshotIoError("fsync", path);
    ::close(fd);
    return s;
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ShardStore>> ShardStore::Open(const std::string& path, uint32_t shard,
                                                     const ShardStoreOptions& options) {
  std::unique_ptr<ShardStore> store(new ShardStore(path, shard, options));
  Status s = store->Init();
  if (!s.ok()) return s;
  return store;
}

Status ShardStore::Init() {
  db::Config config = {{"threads", std::to_string(std::max(1, options_.duckdb_threads))},
                       {"memory_limit", options_.memory_limit}};
  auto db = db::Database::Open(path_, config);
  if (!db.ok()) return db.status();
  db_ = *db;
  auto conn = db_->Connect();
  if (!conn.ok()) return conn.status();
  writer_ = std::move(*conn);
  auto has_rollup = writer_->Query("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                                   {db::Param::Text(kRollupTable)});
  if (!has_rollup.ok()) return has_rollup.status();
  Status s = writer_->Execute(
      "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, metric VARCHAR NOT NULL, "
      "partition_key VARCHAR NOT NULL, host VARCHAR, datacenter VARCHAR, tags VARCHAR NOT NULL);"
      "CREATE TABLE IF NOT EXISTS points(series_id INTEGER NOT NULL, ts BIGINT NOT NULL, "
      "value DOUBLE NOT NULL);"
      // No PRIMARY KEY on the key: uniqueness is the state machine's (keys_ is
      // checked before every insert), and DuckDB builds a fresh ART index in
      // every transaction that inserts into an indexed table: that one-row
      // insert cost a worker 11% of its ingest CPU (allocating and zeroing
      // index buffers).
      "CREATE TABLE IF NOT EXISTS applied_writes(key VARCHAR NOT NULL, stored BIGINT NOT NULL, "
      "expires_us BIGINT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS shard_state(id INTEGER PRIMARY KEY, shard INTEGER NOT NULL, "
      "applied_index UBIGINT NOT NULL);" +
      std::string(kRollupSchema));
  if (!s.ok()) return s;
  s = DropAppliedWritesKeyIfAny();
  if (!s.ok()) return s;
  if (has_rollup->Int(0, 0) == 0) {
    // A file written before rollups existed: build them from its points once.
    s = writer_->Execute("INSERT INTO rollup_1h SELECT series_id, " + SqlHourOf("ts") +
                         " AS hour, count(*), sum(value), min(value), max(value), min(ts), max(ts) FROM points "
                         "GROUP BY series_id, hour ORDER BY hour, series_id");
    if (!s.ok()) return s;
  } else {
    auto has_extents = writer_->Query(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = 't0'",
        {db::Param::Text(kRollupTable)});
    if (!has_extents.ok()) return has_extents.status();
    if (has_extents->Int(0, 0) == 0) {
      s = writer_->Execute("BEGIN TRANSACTION; " + SqlAddRollupExtents() + " COMMIT;");
      if (!s.ok()) {
        (void)writer_->Execute("ROLLBACK");
        return s;
      }
    }
  }
  // Newest first: the hours whose cells fit the in-memory totals' budget.
  auto spans = writer_->Query(
      "SELECT hour, min(t0), max(t1), count(DISTINCT series_id) FROM rollup_1h GROUP BY hour ORDER BY hour DESC");
  if (!spans.ok()) return spans.status();
  HourSpans loaded;
  int64_t totals_floor = std::numeric_limits<int64_t>::min();
  uint64_t totals_cells = 0;
  for (size_t r = 0; r < spans->size(); ++r) {
    const int64_t hour = spans->Int(0, r);
    loaded[hour] = {spans->Int(1, r), spans->Int(2, r)};
    totals_cells += static_cast<uint64_t>(spans->Int(3, r));
    if (totals_cells > options_.hourly_totals_cells && totals_floor == std::numeric_limits<int64_t>::min()) {
      totals_floor = hour + 1;
    }
  }
  hour_extents_.Replace(std::move(loaded));
  hourly_totals_.Reset(totals_floor);
  if (options_.hourly_totals_cells > 0) {
    auto cells = writer_->Query(
        "SELECT series_id, hour, sum(n)::BIGINT, sum(total), min(lo), max(hi), min(t0), max(t1) FROM rollup_1h "
        "WHERE hour >= ? GROUP BY series_id, hour",
        {db::Param::Int(totals_floor)});
    if (!cells.ok()) return cells.status();
    for (size_t r = 0; r < cells->size(); ++r) {
      hourly_totals_.MergeRow(static_cast<int32_t>(cells->Int(0, r)), cells->Int(1, r),
                              static_cast<uint64_t>(cells->Int(2, r)), cells->Double(3, r), cells->Double(4, r),
                              cells->Double(5, r), cells->Int(6, r), cells->Int(7, r));
    }
  }

  auto state = writer_->Query("SELECT shard, applied_index FROM shard_state WHERE id = 0");
  if (!state.ok()) return state.status();
  if (state->size() == 0) {
    s = writer_->Execute("INSERT INTO shard_state VALUES (0, " + std::to_string(shard_) + ", 0)");
    if (!s.ok()) return s;
  } else {
    // A file from another shard would silently serve wrong data: refuse it.
    if (state->Int(0, 0) != static_cast<int64_t>(shard_)) {
      return Status(Code::kStorage, "Shard file belongs to another shard",
                    {{"storage_type", "duckdb"}, {"operation", "open"}, {"path", path_},
                     {"expected_shard", shard_}, {"found_shard", state->Int(0, 0)}});
    }
    applied_index_ = static_cast<uint64_t>(state->Int(1, 0));
  }

  auto series = writer_->Query("SELECT id, metric, partition_key, tags FROM series ORDER BY id");
  if (!series.ok()) return series.status();
  for (size_t r = 0; r < series->size(); ++r) {
    Series info{static_cast<int32_t>(series->Int(0, r)), series->Text(1, r), series->Text(2, r), {}};
    auto tags = nlohmann::json::parse(series->Text(3, r), nullptr, false);
    if (tags.is_object()) {
      for (auto& [k, v] : tags.items()) info.tags.emplace_back(k, v.get<std::string>());
    }
    RM_CHECK(info.id == static_cast<int32_t>(series_.size()), "series ids must be dense");
    series_by_identity_[SeriesIdentity(info.partition_key, info.metric, info.tags)] = info.id;
    series_.push_back(std::move(info));
  }

  auto count = writer_->Query("SELECT count(*) FROM points");
  if (!count.ok()) return count.status();
  point_count_ = static_cast<uint64_t>(count->Int(0, 0));

  // A key stored again after it expired (but before a prune removed it) has
  // two rows: the later-expiring one is the live one.
  auto keys = writer_->Query("SELECT key, stored, expires_us FROM applied_writes ORDER BY expires_us");
  if (!keys.ok()) return keys.status();
  for (size_t r = 0; r < keys->size(); ++r) {
    keys_[keys->Text(0, r)] = {static_cast<uint64_t>(keys->Int(1, r)), keys->Int(2, r)};
  }
  return ReplayCommandLogLocked();
}

Status ShardStore::DropAppliedWritesKeyIfAny() {
  // Files written before the key lost its index: DuckDB cannot drop a primary
  // key, so copy the table into one without it (once, in one transaction).
  auto indexed = writer_->Query(
      "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'applied_writes' AND "
      "constraint_type = 'PRIMARY KEY'");
  if (!indexed.ok()) return indexed.status();
  if (indexed->Int(0, 0) == 0) return Status::Ok();
  Status s = writer_->Execute(
      "BEGIN TRANSACTION;"
      "CREATE TABLE applied_writes_unindexed(key VARCHAR NOT NULL, stored BIGINT NOT NULL, expires_us BIGINT NOT NULL);"
      "INSERT INTO applied_writes_unindexed SELECT key, stored, expires_us FROM applied_writes;"
      "DROP TABLE applied_writes;"
      "ALTER TABLE applied_writes_unindexed RENAME TO applied_writes;"
      "COMMIT");
  if (!s.ok()) (void)writer_->Execute("ROLLBACK");
  return s;
}

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

std::string ShardStore::DirectoryOf(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

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

Status ShardStore::RecordIndexLocked() {
  if (buffered_index_ <= applied_index_ || !writer_) return Status::Ok();
  auto r = writer_->QueryCached("UPDATE shard_state SET applied_index = ? WHERE id = 0",
                                {db::Param::Int(static_cast<int64_t>(buffered_index_.load()))});
  if (!r.ok()) return r.status();
  applied_index_ = buffered_index_.load();
  return Status::Ok();
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

std::optional<std::vector<int32_t>> ShardStore::MatchingSeries(const PointFilter& filter) const {
  if (filter.metric.empty() && filter.partition_key.empty()) return std::nullopt;
  std::vector<int32_t> ids;
  std::shared_lock<std::shared_mutex> catalog(catalog_mu_);
  for (const auto& s : series_) {
    if (!filter.metric.empty() && s.metric != filter.metric) continue;
    if (!filter.partition_key.empty() && s.partition_key != filter.partition_key) continue;
    ids.push_back(s.id);
  }
  if (!ids.empty() && ids.size() == series_.size()) return std::nullopt;  // no need to filter
  return ids;
}

Result<ShardStore::Reader> ShardStore::TakeReader() {
  std::shared_lock<std::shared_mutex> swap(swap_mu_);
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    if (!readers_.empty()) {
      auto c = std::move(readers_.back());
      readers_.pop_back();
      return Reader(this, std::move(swap), std::move(c));
    }
  }
  if (!db_) return Status(Code::kStorage, "shard store is closed: reopening it after a snapshot install failed");
  auto c = db_->Connect();
  if (!c.ok()) return c.status();
  return Reader(this, std::move(swap), std::move(*c));
}

Result<std::string> ShardStore::ExportSnapshot() {
  std::shared_lock<std::shared_mutex> swap(swap_mu_);
  // Applies (and the checkpoints DuckDB runs when they commit) are the only
  // writers of the two files: with them held off, the pair is one committed state.
  std::lock_guard<std::mutex> write(write_mu_);
  if (Status flushed = FlushLocked(); !flushed.ok()) return flushed;  // the snapshot holds every write
  SnapshotBundle bundle{shard_, applied_index_, {}};
  for (const char* suffix : {"", ".wal"}) {
    auto data = ReadWholeFile(path_ + suffix);
    if (!data.ok()) return data.status();
    if (*data) bundle.files.push_back({suffix, std::move(**data)});
  }
  if (bundle.files.empty() || bundle.files[0].suffix != "") {
    return Status(Code::kStorage, "shard file is missing", {{"path", path_}});
  }
  return EncodeSnapshotBundle(bundle);
}

Status ShardStore::InstallSnapshot(std::string_view blob) {
  auto bundle = DecodeSnapshotBundle(blob);
  if (!bundle.ok()) return bundle.status();
  if (bundle->shard != shard_) {
    return Status(Code::kStorage, "snapshot belongs to another shard",
                  {{"expected_shard", shard_}, {"found_shard", bundle->shard}});
  }
  std::unique_lock<std::shared_mutex> swap(swap_mu_);
  std::lock_guard<std::mutex> write(write_mu_);
  if (bundle->applied_index <= LastIndexLocked()) return Status::Ok();

  // Close the database (every connection first), then swap the files. Crash
  // safety: the new files are complete and synced before the old WAL goes, and
  // a database file without its WAL is an older committed state whose stored
  // applied index makes Raft fetch the snapshot again.
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    readers_.clear();
  }
  writer_.reset();
  db_.reset();
  for (const auto& f : bundle->files) {
    Status s = WriteFileSynced(path_ + f.suffix + ".incoming", f.data);
    if (!s.ok()) return s;
  }
  std::error_code ec;
  std::filesystem::remove(path_ + ".wal", ec);
  for (const auto& f : bundle->files) {
    std::filesystem::rename(path_ + f.suffix + ".incoming", path_ + f.suffix, ec);
    if (ec) return Status(Code::kStorage, "cannot move the snapshot into place: " + ec.message(), {{"path", path_}});
  }
  SyncDirectoryOf(path_);

  // The snapshot replaces whatever was buffered too.
  buffer_.clear();
  buffered_keys_.clear();
  buffered_points_ = 0;
  buffered_commands_ = 0;
  buffered_index_ = 0;
  log_.reset();
  std::filesystem::remove(path_ + kCommandLogSuffix, ec);
  keys_.clear();
  next_key_prune_us_ = 0;
  rollup_rows_since_compaction_ = 0;
  rollup_dirty_hours_.reset();
  next_rollup_compaction_ = kRollupCompactEvery;
  applied_index_ = 0;
  point_count_ = 0;
  {
    std::unique_lock<std::shared_mutex> catalog(catalog_mu_);
    series_.clear();
    series_by_identity_.clear();
  }
  Status s = Init();
  if (!s.ok()) {
    writer_.reset();
    db_.reset();
  }
  return s;
}

void ShardStore::ReturnReader(std::unique_ptr<db::Connection> conn) {
  std::lock_guard<std::mutex> lock(readers_mu_);
  if (readers_.size() < 8) readers_.push_back(std::move(conn));
}

namespace {

PartialAggregate RowToPartial(const db::Rows& rows, size_t row, size_t first_col) {
  PartialAggregate p;
  p.count = static_cast<uint64_t>(rows.Int(first_col, row));
  if (p.count > 0) {
    p.sum = rows.Double(first_col + 1, row);
    if (!rows.IsNull(first_col + 2, row)) p.min = rows.Double(first_col + 2, row);
    if (!rows.IsNull(first_col + 3, row)) p.max = rows.Double(first_col + 3, row);
  }
  return p;
}

}  // namespace

Result<db::Rows> ShardStore::QueryPartials(db::Connection& conn, const RangeSplit& plain, bool widen,
                                           size_t check_col, const PartialsSql& build) {
  std::vector<AssumedEdge> assumed;
  const RangeSplit split = widen ? WidenSplit(plain, hour_extents_, assumed) : plain;
  std::vector<db::Param> params;
  const std::string sql = build(split, assumed, params);
  if (sql.empty()) return db::Rows();
  auto rows = conn.QueryCached(sql, params);
  if (!rows.ok() || assumed.empty()) return rows;
  for (size_t r = 0; r < rows->size(); ++r) {
    if (rows->Int(0, r) == -1 && rows->Int(check_col, r) > 0) {
      return QueryPartials(conn, plain, /*widen=*/false, check_col, build);  // a write raced the hint
    }
  }
  return rows;
}

Result<std::vector<std::pair<int32_t, PartialAggregate>>> ShardStore::ScanPartials(
    db::Connection& conn, const PointFilter& filter, const std::optional<std::vector<int32_t>>& ids, bool by_series) {
  std::vector<std::pair<int32_t, PartialAggregate>> out;
  const std::string sid = by_series ? "series_id" : "0";
  const std::string series = ids ? " AND " + SeriesIdFilter(*ids) : "";
  const bool rollup = filter.use_rollup && RollupPays();
  const RangeSplit plain = rollup ? SplitRange(filter.from_us, filter.to_us)
                                  : RangeSplit{std::nullopt,
                                               {{filter.from_us.value_or(std::numeric_limits<int64_t>::min()),
                                                 filter.to_us.value_or(std::numeric_limits<int64_t>::max())}}};
  // One statement (one plan) for the rollup's whole hours and the edges.
  auto build = [&](const RangeSplit& split, const std::vector<AssumedEdge>& assumed, std::vector<db::Param>& params) {
    std::vector<std::string> parts;
    if (split.hours) {
      parts.push_back("SELECT " + sid + " AS sid, sum(n)::BIGINT, sum(total), " +
                      (filter.min_max ? "min(lo), max(hi)" : "NULL::DOUBLE, NULL::DOUBLE") +
                      " FROM rollup_1h WHERE hour BETWEEN ? AND ?" + series + " GROUP BY sid");
      params.push_back(db::Param::Int(split.hours->first));
      params.push_back(db::Param::Int(split.hours->second));
    }
    for (const auto& [lo, hi] : split.edges) {
      parts.push_back("SELECT " + sid + " AS sid, count(value), sum(value), " +
                      (filter.min_max ? "min(value), max(value)" : "NULL::DOUBLE, NULL::DOUBLE") +
                      " FROM points WHERE ts >= ? AND ts <= ?" + series + " GROUP BY sid");
      params.push_back(db::Param::Int(lo));
      params.push_back(db::Param::Int(hi));
    }
    if (!assumed.empty()) {
      parts.push_back("SELECT -1 AS sid, count(*)::BIGINT, 0.0, NULL::DOUBLE, NULL::DOUBLE FROM rollup_1h WHERE " +
                      EdgeViolationFilter(assumed, params) + series);
    }
    return JoinUnionAll(parts);
  };
  auto rows = QueryPartials(conn, plain, rollup, /*check_col=*/1, build);
  if (!rows.ok()) return rows.status();
  for (size_t r = 0; r < rows->size(); ++r) {
    if (rows->Int(0, r) == -1) continue;  // the edge check
    PartialAggregate p = RowToPartial(*rows, r, 1);
    if (p.count > 0) out.emplace_back(static_cast<int32_t>(rows->Int(0, r)), p);
  }
  return out;
}

std::optional<std::vector<std::pair<int32_t, PartialAggregate>>> ShardStore::PartialsFromTotals(
    const PointFilter& filter, bool by_series) {
  if (!filter.use_rollup || !db_) return std::nullopt;
  auto totals = hourly_totals_.ReadLock();  // before the series: see hourly_totals_
  const auto ids = MatchingSeries(filter);
  std::vector<bool> selected;
  if (ids) {
    selected.resize(ids->empty() ? 0 : static_cast<size_t>(ids->back()) + 1);
    for (int32_t id : *ids) selected[static_cast<size_t>(id)] = true;
  }
  std::map<int32_t, PartialAggregate> per_series;
  const bool answered = hourly_totals_.Fold(
      filter.from_us, filter.to_us,
      [&](int32_t s) { return !ids || (static_cast<size_t>(s) < selected.size() && selected[static_cast<size_t>(s)]); },
      [&](int32_t s, int64_t, const HourCell& c) {
        PartialAggregate& p = per_series[by_series ? s : 0];
        p.count += c.n;
        p.sum += c.sum;
        if (filter.min_max) {
          p.min = std::min(p.min, c.lo);
          p.max = std::max(p.max, c.hi);
        }
      });
  if (!answered) return std::nullopt;
  ++reads_from_totals_;
  return std::vector<std::pair<int32_t, PartialAggregate>>(per_series.begin(), per_series.end());
}

Result<PartialAggregate> ShardStore::Aggregate(const PointFilter& filter) {
  auto total_of = [](const std::vector<std::pair<int32_t, PartialAggregate>>& partials) {
    PartialAggregate total;
    for (const auto& [series, p] : partials) total.Merge(p);
    return total;
  };
  if (Status flushed = Flush(); !flushed.ok()) return flushed;  // reads see every acknowledged write
  {
    std::shared_lock<std::shared_mutex> swap(swap_mu_);  // no snapshot install mid-read
    if (auto partials = PartialsFromTotals(filter, /*by_series=*/false)) return total_of(*partials);
  }
  auto conn = TakeReader();  // first: the series ids below must match the file read
  if (!conn.ok()) return conn.status();
  auto ids = MatchingSeries(filter);
  if (ids && ids->empty()) return PartialAggregate{};
  auto partials = ScanPartials(**conn, filter, ids, /*by_series=*/false);
  if (!partials.ok()) return partials.status();
  return total_of(*partials);
}

Result<std::map<std::vector<std::string>, PartialAggregate>> ShardStore::AggregateGroups(
    const PointFilter& filter, const std::vector<std::string>& group_by) {
  std::map<std::vector<std::string>, PartialAggregate> groups;
  auto group = [&](const std::vector<std::pair<int32_t, PartialAggregate>>& partials) {
    std::shared_lock<std::shared_mutex> catalog(catalog_mu_);
    for (const auto& [series, p] : partials) {
      const Series& s = series_.at(static_cast<size_t>(series));
      std::vector<std::string> key;
      key.reserve(group_by.size());
      for (const auto& field : group_by) {
        if (field == "metric") {
          key.push_back(s.metric);
        } else if (field == "partition_key") {
          key.push_back(s.partition_key);
        } else {
          key.push_back(TagValue(s.tags, field));
        }
      }
      groups[key].Merge(p);
    }
  };
  if (Status flushed = Flush(); !flushed.ok()) return flushed;  // reads see every acknowledged write
  {
    std::shared_lock<std::shared_mutex> swap(swap_mu_);  // no snapshot install mid-read
    if (auto partials = PartialsFromTotals(filter, /*by_series=*/true)) {
      group(*partials);
      return groups;
    }
  }
  auto conn = TakeReader();  // first: the series ids below must match the file read
  if (!conn.ok()) return conn.status();
  auto ids = MatchingSeries(filter);
  if (ids && ids->empty()) return groups;
  auto partials = ScanPartials(**conn, filter, ids, /*by_series=*/true);
  if (!partials.ok()) return partials.status();
  group(*partials);
  return groups;
}

uint64_t ShardStore::applied_index() const { return std::max<uint64_t>(applied_index_, buffered_index_); }
uint64_t ShardStore::point_count() const { return point_count_ + buffered_points_; }

uint64_t ShardStore::DiskBytes() const {
  uint64_t total = 0;
  for (const auto& p : {path_, path_ + ".wal", path_ + kCommandLogSuffix}) {
    std::error_code ec;
    auto n = std::filesystem::file_size(p, ec);
    if (!ec) total += n;
  }
  return total;
}

}  // namespace rm
