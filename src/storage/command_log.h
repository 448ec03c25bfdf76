// CommandLog: an append-only file of a shard's acknowledged commands that have
// not reached its DuckDB file yet (the write buffer of shard_store.h).
//
// A shard without Raft acknowledges a write once the command is here and synced,
// and copies commands into DuckDB later, many per transaction. After a crash the
// store replays the records whose index DuckDB does not have; once DuckDB
// committed them, the log is emptied.
//
// Record: u32 payload length (top bit: the first record of its Append), u64
// index, u64 checksum (of that field, index and payload), payload. A crash
// mid-append leaves a torn last Append, which Open cuts off: it was never synced,
// so never acknowledged. Damage followed by a later, synced Append is refused
// instead (kStorage): the shard stops rather than drop acknowledged records.
//
// Not thread-safe: the owning store serialises calls (its write lock).
#pragma once

#include "src/common/status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rm {

class CommandLog {
 public:
  struct Record {
    uint64_t index;
    std::string payload;
  };

  // Opens (creating it if missing) the log at `path`, reading its whole records
  // into `records` and cutting off a torn tail.
  static Result<std::unique_ptr<CommandLog>> Open(const std::string& path, std::vector<Record>* records);
  // Reads the records of the log at `path` without opening it for writes; a
  // missing file has none.
  static Result<std::vector<Record>> ReadAll(const std::string& path);
  ~CommandLog();
  CommandLog(const CommandLog&) = delete;
  CommandLog& operator=(const CommandLog&) = delete;

  // Appends the records and syncs them (one fdatasync for all). On failure the
  // file is cut back to what it held before, so no half record stays behind.
  // A full disk is kStorageFull with seed 001's storage details.
  Status Append(const std::vector<std::pair<uint64_t, std::string_view>>& records);
  // Empties the log: every record reached DuckDB.
  Status Clear();
  // Replaces the log with `records` (what is still waiting after part of the
  // buffer reached DuckDB): written to a new file, synced, then renamed over
  // the log, so a crash leaves either the old log or the new one whole.
  Status Rewrite(const std::vector<std::pair<uint64_t, std::string_view>>& records);
  // Bytes in the file.
  uint64_t bytes() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  CommandLog(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  // Appends to `fd` at `offset` and syncs; false with errno on failure.
  static bool WriteRecords(int fd, uint64_t offset, const std::string& bytes);

  const std::string path_;
  int fd_;
  uint64_t size_;
};

}  // namespace rm
