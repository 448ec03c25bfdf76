// ShardStore: the state machine of one shard, kept in one DuckDB file.
// Files: shard_store.cc (open, schema, snapshots, readers), shard_apply.cc
// (applying commands), shard_write_buffer.cc (the buffer and its command log),
// shard_read.cc (/analytics and /compute reads), shard_aggregate.cc and
// shard_describe.cc (/aggregate).
//
// Writes arrive as ShardCommands and are applied with Apply(command, index): the
// points, any new series, the idempotency key and the applied index are written
// in one DuckDB transaction, so a command is either wholly stored or not at all,
// and a command whose index or key was already applied is not applied again
// (the property Raft log replay needs). Apply returns only after DuckDB
// committed (WAL synced), so an acknowledged write survives kill -9.
//
// Write buffer (shards without Raft, ApplyNext): DuckDB's cost is per
// transaction and per copy of a point, so a few thousand points per transaction
// spend most of a worker's CPU there (docs/benchmarks.md). ApplyNext therefore
// appends its commands to the shard's command log (command_log.h), syncs it,
// acknowledges, and keeps the commands in memory; they reach DuckDB together,
// in one transaction, once write_buffer_points are waiting, or before anything
// reads the shard (every read first flushes, so reads see every acknowledged
// write, exactly as before). After a crash, Init replays the log's commands
// that DuckDB does not have.
//
// Raft's applies (ApplyBatch with may_buffer) use the same buffer without the
// command log: Raft's own log already holds every entry, and after a crash it
// replays the entries above DuckDB's index (durable_index()). The caller must
// keep its log until durable_index() covers it: a Raft snapshot flushes first
// (ShardReplica::Snapshot), since the log before a snapshot is dropped.
//
// Layout (chosen for the query path; see docs/architecture.md):
//   series(id INTEGER, metric, partition_key, host, datacenter, tags JSON text)
//   points(series_id INTEGER, ts BIGINT micros, value DOUBLE)
//   rollup_1h(series_id, hour, n, total, lo, hi, t0, t1)   hourly partials (hourly_rollup.h)
//   applied_writes(key, stored, expires_us)      idempotency keys
//   shard_state(applied_index)                   last applied command index
// The series catalog is also kept in memory, so tag/metric filters resolve to
// series ids before DuckDB scans the narrow points table.
//
// Thread safety: all methods are thread-safe. Applies are serialised; reads run
// concurrently on their own connections and see every committed apply. An
// installed snapshot replaces the files while no read or apply runs.
#pragma once

#include "proto/raftmetrics.pb.h"
#include "src/common/status.h"
#include "src/query/partial_aggregate.h"
#include "src/storage/command_log.h"
#include "src/storage/duckdb.h"
#include "src/storage/hourly_rollup.h"
#include "src/storage/hourly_totals.h"
#include "src/wire/point.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rm {

inline constexpr uint64_t kWriteBufferPoints = 131072;
// Rows of a DuckDB row group (its storage unit; DuckDB 1.4's default).
inline constexpr uint64_t kDuckDBRowGroupRows = 122880;

struct ShardStoreOptions {
  int duckdb_threads = 1;
  std::string memory_limit = "512MB";
  // Shards with fewer points answer from the points alone (see hourly_rollup.h).
  uint64_t rollup_min_points = kRollupMinPoints;
  // Cells of the hourly rollup also kept in memory (hourly_totals.h); 0: none.
  size_t hourly_totals_cells = kHourlyTotalsCells;
  // ApplyNext's write buffer (see above): DuckDB gets the buffered commands once
  // this many points wait (a DuckDB row group is 122,880 rows); 0: every
  // ApplyNext commits to DuckDB itself.
  uint64_t write_buffer_points = kWriteBufferPoints;
  // Below this much free disk space, ApplyNext writes through to DuckDB: a full
  // disk must fail the write that does not fit, never a later flush of writes
  // already acknowledged (which reads could then not see).
  uint64_t write_buffer_min_free_bytes = 256ull << 20;
  // Free bytes on the shard directory's file system (statvfs when unset): a
  // test sets it to make the disk look full.
  std::function<uint64_t(const std::string& dir)> free_disk_bytes;
};

// Which points a query touches. Empty strings match everything.
struct PointFilter {
  std::string metric;
  std::string partition_key;
  std::optional<int64_t> from_us;  // inclusive
  std::optional<int64_t> to_us;    // inclusive
  bool min_max = true;             // false: only count and sum (min/max stay empty)
  bool use_rollup = true;          // false: read every point (replica checksums; see hourly_rollup.h)
};

struct ApplyOutcome {
  uint64_t stored = 0;     // points stored when first applied
  bool duplicate = false;  // key or index seen before: nothing stored now
};

class ShardStore {
 public:
  static Result<std::unique_ptr<ShardStore>> Open(const std::string& path, uint32_t shard,
                                                  const ShardStoreOptions& options);

  // Applies `command` as log entry `index` (> applied_index(), or it is a replay
  // and is skipped). Standalone mode passes applied_index() + 1.
  Result<ApplyOutcome> Apply(const raftmetrics::v1::ShardCommand& command, uint64_t index);
  // Applies several log entries (ascending indexes) in one transaction, one
  // result each (a failed transaction fails them all): a replica that fell a
  // few entries behind pays one commit for all of them.
  struct Entry {
    const raftmetrics::v1::ShardCommand* command;
    uint64_t index;
    // Set (to the same command) when the caller gives it up: the write buffer
    // then takes it by move instead of copying its points.
    raftmetrics::v1::ShardCommand* movable = nullptr;
  };
  // With may_buffer the entries may wait in the write buffer (see above): the
  // caller's log must keep them until durable_index() reaches them.
  std::vector<Result<ApplyOutcome>> ApplyBatch(const std::vector<Entry>& entries, bool may_buffer = false);
  // Apply with the next local index. Concurrent callers are group-committed:
  // one transaction for every command waiting on this shard.
  Result<ApplyOutcome> ApplyNext(const raftmetrics::v1::ShardCommand& command);
  // The same for several commands at once (in order), one result each: they
  // join one group, so they share a transaction.
  std::vector<Result<ApplyOutcome>> ApplyNext(const std::vector<const raftmetrics::v1::ShardCommand*>& commands);

  // Writes the buffered commands to DuckDB (see the write buffer above). Reads
  // call it first; a failure leaves them buffered (and in the command log).
  Status Flush();
  // Points and commands acknowledged but not yet in DuckDB.
  uint64_t buffered_points() const { return buffered_points_; }

  Result<PartialAggregate> Aggregate(const PointFilter& filter);
  // Aggregates grouped by the values of `group_by` (tag keys, or "metric",
  // "partition_key"); a series without the tag groups under "".
  Result<std::map<std::vector<std::string>, PartialAggregate>> AggregateGroups(
      const PointFilter& filter, const std::vector<std::string>& group_by);

  // Partial aggregates per group and time bucket for /aggregate (see
  // AggregateQuery in proto/raftmetrics.proto). Implemented in shard_aggregate.cc.
  // A shard without any point for the query also says what it knows of the
  // metric (`presence`, shard_describe.cc), so an empty answer can explain itself.
  Result<raftmetrics::v1::AggregateShardResult> AggregateQuery(const raftmetrics::v1::AggregateQuery& query);

  // A consistent copy of the shard (its DuckDB file and WAL, see
  // snapshot_bundle.h) as of applied_index(), for a replica that catches up by
  // snapshot. Applies wait while the files are read; queries do not.
  Result<std::string> ExportSnapshot();
  // Replaces the shard's whole state with an exported snapshot of the same
  // shard, checked first. A snapshot not newer than this store changes nothing.
  // Queries and applies wait while the files are swapped.
  Status InstallSnapshot(std::string_view blob);

  // The last command index applied, buffered ones included: the state reads see.
  uint64_t applied_index() const;
  // The last command index DuckDB holds (what survives a crash without a log
  // replay); below applied_index() while the write buffer holds something.
  uint64_t durable_index() const { return applied_index_; }
  // What reads believe of each hour's extent (hourly_rollup.h). Exposed so
  // that tests can make it stale, as a racing write would.
  HourExtents& hour_extents() { return hour_extents_; }
  // The rollup's cells held in memory (hourly_totals.h).
  const HourlyTotals& hourly_totals() const { return hourly_totals_; }
  // Reads answered from those totals, without DuckDB.
  uint64_t reads_from_totals() const { return reads_from_totals_; }
  // Points stored in this shard (kept in memory; counted at open).
  uint64_t point_count() const;
  uint32_t shard() const { return shard_; }
  const std::string& path() const { return path_; }
  // Bytes of the DuckDB file and its WAL.
  uint64_t DiskBytes() const;

 private:
  struct Series {
    int32_t id;
    std::string metric;
    std::string partition_key;
    Tags tags;
  };
  struct KeyRecord {
    uint64_t stored;
    int64_t expires_us;
  };
  // Whether a stored key still makes `command` a duplicate. Decided by the
  // command's own (leader-fixed) time, not by whether this replica has pruned
  // the key yet: replicas prune at different moments (their applies are
  // grouped differently), and must still agree.
  static bool KeyLive(const KeyRecord& key, const raftmetrics::v1::ShardCommand& command) {
    return key.expires_us >= command.issued_us();
  }

  ShardStore(std::string path, uint32_t shard, ShardStoreOptions options)
      : path_(std::move(path)), dir_(DirectoryOf(path_)), shard_(shard), options_(std::move(options)),
        hourly_totals_(options_.hourly_totals_cells) {}
  // Opens the DuckDB file and loads the in-memory state from it.
  Status Init();
  // Migration: applied_writes of older files had a PRIMARY KEY (see Init).
  Status DropAppliedWritesKeyIfAny();
  // A pooled read connection. Holding one keeps InstallSnapshot from swapping
  // the files underneath the query.
  class Reader {
   public:
    Reader(ShardStore* store, std::shared_lock<std::shared_mutex> lock, std::unique_ptr<db::Connection> conn)
        : store_(store), lock_(std::move(lock)), conn_(std::move(conn)) {}
    Reader(Reader&&) = default;
    ~Reader() {
      if (conn_) store_->ReturnReader(std::move(conn_));
    }
    db::Connection& operator*() { return *conn_; }
    db::Connection* operator->() { return conn_.get(); }

   private:
    ShardStore* store_;
    std::shared_lock<std::shared_mutex> lock_;
    std::unique_ptr<db::Connection> conn_;
  };
  // One command of a group commit, owned by the thread that submitted it.
  struct GroupEntry {
    const raftmetrics::v1::ShardCommand* command;
    uint64_t index;
    Result<ApplyOutcome> result;
    bool done;
    raftmetrics::v1::ShardCommand* movable = nullptr;  // see Entry::movable
  };
  // Writes every command of `group` in one transaction and sets each result
  // (a failed transaction fails them all). Requires write_mu_.
  void ApplyGroupLocked(std::vector<GroupEntry*>& group);
  // The write buffer's path: keeps the group's commands in buffer_ and sets
  // each result to what the flush will store. With `logged` (ApplyNext) the
  // commands take the next indexes and are appended to the command log (one
  // sync) first; without (Raft), they come with their indexes, and those at or
  // below the last one are replays. Requires write_mu_.
  void StageGroupLocked(std::vector<GroupEntry*>& group, bool logged);
  // Writes buffer_ to DuckDB in one transaction and empties it and the log.
  // With whole_row_groups, only the oldest commands that fill whole DuckDB row
  // groups (nearly: commands are not split) go, and the log keeps the rest:
  // every flush that ends in a partly filled row group leaves that row group
  // partly filled for good, which cost ~50% more bytes per point. Requires
  // write_mu_.
  Status FlushLocked(bool whole_row_groups = false);
  // Stores buffered_index_ as DuckDB's applied index when only duplicates
  // (which are not buffered) came after the last flushed command: an emptied
  // buffer then leaves DuckDB at applied_index(). Requires write_mu_.
  Status RecordIndexLocked();
  // Replays the command log left by a crash (Init): its commands that DuckDB
  // does not have go to DuckDB now. Requires write_mu_ (or no other user).
  Status ReplayCommandLogLocked();
  // The index of the last command applied or buffered. Requires write_mu_.
  uint64_t LastIndexLocked() const { return std::max<uint64_t>(applied_index_, buffered_index_); }
  // Whether writes should be buffered now (enabled, and room on the disk).
  bool BufferWritesLocked() const;
  // Compacts the rollup when enough rows were appended since the last time.
  // Requires write_mu_.
  void MaybeCompactRollupLocked();
  // Merges the rollup rows of `hours` into one per (series, hour), inside the
  // caller's transaction; false when the range holds too few unmerged rows to
  // be worth rewriting yet. Requires write_mu_.
  Result<bool> CompactRollupLocked(std::pair<int64_t, int64_t> hours, uint64_t unmerged_rows);
  // Series ids matching the metric/partition_key filter; nullopt means "all".
  std::optional<std::vector<int32_t>> MatchingSeries(const PointFilter& filter) const;
  // Whether reads should use the hourly rollup for whole hours: only when the
  // shard is large enough for DuckDB to skip the points outside the edges.
  bool RollupPays() const { return point_count_ >= options_.rollup_min_points; }
  // Count/sum/min/max of the filter's points in the series `ids` (nullopt: all),
  // per series (by_series) or as one row: whole hours from the rollup, the rest
  // from the points.
  Result<std::vector<std::pair<int32_t, PartialAggregate>>> ScanPartials(
      db::Connection& conn, const PointFilter& filter, const std::optional<std::vector<int32_t>>& ids, bool by_series);
  // What ScanPartials returns, from the totals in memory (hourly_totals.h),
  // when they answer the filter exactly; nullopt when DuckDB must. Requires
  // swap_mu_ shared.
  std::optional<std::vector<std::pair<int32_t, PartialAggregate>>> PartialsFromTotals(const PointFilter& filter,
                                                                                      bool by_series);
  // Writes the one statement of a read's partials for `split`, appending its
  // parameters; for `assumed` edge hours it adds a check row: sid -1 in column
  // 0 and, in the column the caller names, the count of rollup rows that break
  // the assumption. "" when there is nothing to read.
  using PartialsSql =
      std::function<std::string(const RangeSplit& split, const std::vector<AssumedEdge>& assumed,
                                std::vector<db::Param>& params)>;
  // Runs `build`'s statement for `plain` with its edge hours widened by what
  // the shard knows of them (WidenSplit, when `widen`); when the check row
  // (count in column `check_col`) says a write raced that, runs it again for
  // `plain`. The rows include the check row: callers skip sid -1.
  Result<db::Rows> QueryPartials(db::Connection& conn, const RangeSplit& plain, bool widen, size_t check_col,
                                 const PartialsSql& build);
  // For AggregateQuery: the series passing its filters, each with its group index,
  // and the group keys. Fails when there are more groups than query.max_groups().
  struct SeriesSelection {
    std::vector<int32_t> ids;          // sorted
    std::vector<int32_t> group_of;     // by series id (size = all series), -1 = not selected
    std::vector<std::vector<std::string>> groups;
    bool all = false;                  // every series of the shard is selected
  };
  Result<SeriesSelection> SelectSeries(const raftmetrics::v1::AggregateQuery& query) const;
  // AggregateQuery's points (shard_aggregate.cc) and the description of an
  // empty answer (shard_describe.cc).
  Result<raftmetrics::v1::AggregateShardResult> AggregatePoints(const raftmetrics::v1::AggregateQuery& query);
  Result<raftmetrics::v1::MetricPresence> DescribeMetric(const raftmetrics::v1::AggregateQuery& query);
  Result<Reader> TakeReader();
  void ReturnReader(std::unique_ptr<db::Connection> conn);

  static std::string DirectoryOf(const std::string& path);

  const std::string path_;
  const std::string dir_;  // the directory holding the shard's files
  const uint32_t shard_;
  const ShardStoreOptions options_;
  // Shared by every read (through Reader) and by ExportSnapshot; exclusive while
  // InstallSnapshot swaps the files. Taken before write_mu_.
  std::shared_mutex swap_mu_;
  std::shared_ptr<db::Database> db_;  // null only if reopening after an install failed

  std::mutex write_mu_;  // serialises applies; guards writer_, keys_, applied_index_
  std::unique_ptr<db::Connection> writer_;
  std::unordered_map<std::string, KeyRecord> keys_;
  std::atomic<uint64_t> applied_index_{0};
  std::atomic<uint64_t> point_count_{0};
  int64_t next_key_prune_us_ = 0;
  // Rollup compaction (see hourly_rollup.h): rows appended since the last one,
  // the hours they touched, and the row count that triggers the next attempt.
  uint64_t rollup_rows_since_compaction_ = 0;
  std::optional<std::pair<int64_t, int64_t>> rollup_dirty_hours_;
  uint64_t next_rollup_compaction_ = kRollupCompactEvery;
  // The extent of each hour's points, as the rollup rows say (reads' hint).
  HourExtents hour_extents_;
  // The rollup in memory, for the hours that fit; updated after each commit,
  // after the catalog (a reader's series always include the cells' series).
  HourlyTotals hourly_totals_;
  std::atomic<uint64_t> reads_from_totals_{0};

  mutable std::shared_mutex catalog_mu_;  // guards series_, series_by_identity_
  std::vector<Series> series_;
  std::unordered_map<std::string, int32_t> series_by_identity_;

  // The write buffer (guarded by write_mu_): commands acknowledged from the
  // command log, in index order, and the idempotency keys among them.
  struct Buffered {
    uint64_t index;
    uint64_t points;  // what the command stores
    raftmetrics::v1::ShardCommand command;
  };
  std::vector<Buffered> buffer_;
  std::unordered_map<std::string, uint64_t> buffered_keys_;  // key -> points stored
  std::unique_ptr<CommandLog> log_;                          // opened on the first buffered write
  std::atomic<uint64_t> buffered_points_{0};
  std::atomic<size_t> buffered_commands_{0};
  // The last index buffered (a Raft duplicate's too, though it is not kept):
  // never below what the buffer holds; stale (below applied_index_) once flushed.
  std::atomic<uint64_t> buffered_index_{0};

  std::mutex group_mu_;  // guards group_queue_, group_running_, GroupEntry::done
  std::condition_variable group_cv_;
  std::vector<GroupEntry*> group_queue_;
  bool group_running_ = false;

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<db::Connection>> readers_;
};

}  // namespace rm
