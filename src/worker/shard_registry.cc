#include "src/worker/shard_registry.h"

#include <filesystem>
#include <regex>

namespace rm {

namespace fs = std::filesystem;

Status ShardRegistry::OpenExisting() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Status(Code::kStorage, "cannot create " + dir_ + ": " + ec.message());
  static const std::regex kShardFile(R"(shard-(\d+)\.duckdb)");
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::smatch m;
    std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, kShardFile)) continue;
    auto r = Get(static_cast<uint32_t>(std::stoul(m[1].str())));
    if (!r.ok()) return r.status();
  }
  return Status::Ok();
}

Result<ShardStore*> ShardRegistry::Get(uint32_t shard) {
  if (ShardStore* open = Find(shard)) return open;
  // Opening a file can take a while: hold only open_mu_ (one open at a time, so
  // a file is never opened twice), not mu_, so reads of open shards go on.
  std::lock_guard<std::mutex> opening(open_mu_);
  if (ShardStore* open = Find(shard)) return open;
  auto store = ShardStore::Open(dir_ + "/shard-" + std::to_string(shard) + ".duckdb", shard, options_);
  if (!store.ok()) return store.status();
  std::lock_guard<std::mutex> lock(mu_);
  ShardStore* raw = store->get();
  stores_.emplace(shard, std::move(*store));
  return raw;
}

ShardStore* ShardRegistry::Find(uint32_t shard) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = stores_.find(shard);
  return it == stores_.end() ? nullptr : it->second.get();
}

std::vector<ShardStore*> ShardRegistry::All() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ShardStore*> out;
  for (auto& [_, s] : stores_) out.push_back(s.get());
  return out;
}

void ShardRegistry::Drop(uint32_t shard) {
  std::lock_guard<std::mutex> opening(open_mu_);
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = stores_.find(shard);
    if (it == stores_.end()) return;
    path = it->second->path();
    dropped_.push_back(std::move(it->second));
    stores_.erase(it);
  }
  std::error_code ec;
  for (const char* suffix : {"", ".wal", ".wlog"}) fs::remove(path + suffix, ec);
}

uint64_t ShardRegistry::DiskBytes() const {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2)) total += it->file_size(ec2);
  }
  return total;
}

}  // namespace rm
