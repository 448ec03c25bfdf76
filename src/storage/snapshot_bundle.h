// SnapshotBundle: a shard's files (the DuckDB file and its WAL) packed into one
// verifiable blob, shipped to a replica that catches up by snapshot (see
// ShardStore::ExportSnapshot / InstallSnapshot and DESIGN.md "Replication":
// Raft snapshots stay tiny and logical; the file travels out of band).
//
// Layout, all integers little-endian:
//   "RMSNAP01"  u32 shard  u64 applied_index  u32 file count
//   per file:   u32 name length, name, u64 data length, data
//   u64 StableHash of every byte before it
#pragma once

#include "src/common/status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rm {

struct SnapshotFile {
  std::string suffix;  // appended to the shard's path: "" (the database) or ".wal"
  std::string data;
};

struct SnapshotBundle {
  uint32_t shard = 0;
  uint64_t applied_index = 0;
  std::vector<SnapshotFile> files;
};

std::string EncodeSnapshotBundle(const SnapshotBundle& bundle);
// kStorage for a truncated, corrupted or foreign blob.
Result<SnapshotBundle> DecodeSnapshotBundle(std::string_view blob);

}  // namespace rm
