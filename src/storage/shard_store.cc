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
namespace {

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

std::string ShardStore::DirectoryOf(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
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
