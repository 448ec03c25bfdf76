// ShardRegistry: the shard stores of one worker, one DuckDB file each under
// DB_PATH ("shard-<N>.duckdb"). Stores open lazily on first use and stay open;
// files already on disk are opened at start so their data is served at once.
// Thread-safe.
#pragma once

#include "src/common/status.h"
#include "src/storage/shard_store.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace rm {

class ShardRegistry {
 public:
  ShardRegistry(std::string dir, ShardStoreOptions options)
      : dir_(std::move(dir)), options_(std::move(options)) {}

  // Opens every shard file found in the directory.
  Status OpenExisting();
  // The store of `shard`, opened (created) on first use.
  Result<ShardStore*> Get(uint32_t shard);
  // The store if it is open, else nullptr (a shard never written here).
  ShardStore* Find(uint32_t shard);
  std::vector<ShardStore*> All();
  // Forgets a shard this worker no longer holds (its replica moved away) and
  // deletes its files. The store object stays allocated until the registry
  // goes, since a request may still hold a pointer to it.
  void Drop(uint32_t shard);
  // Bytes of every file under the directory.
  uint64_t DiskBytes() const;
  const std::string& dir() const { return dir_; }

 private:
  const std::string dir_;
  const ShardStoreOptions options_;
  std::mutex open_mu_;  // serialises opening files
  std::mutex mu_;       // guards stores_
  std::map<uint32_t, std::unique_ptr<ShardStore>> stores_;
  std::vector<std::unique_ptr<ShardStore>> dropped_;  // guarded by mu_
};

}  // namespace rm
