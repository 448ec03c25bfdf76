#include "src/storage/snapshot_bundle.h"

#include "src/common/hash.h"

#include <cstring>

namespace rm {
namespace {

constexpr std::string_view kMagic = "RMSNAP01";

void PutInt(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads from a blob, failing (rather than reading past the end) on truncation.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool Int(int bytes, uint64_t* v) {
    if (data_.size() - pos_ < static_cast<size_t>(bytes)) return false;
    *v = 0;
    for (int i = 0; i < bytes; ++i) *v |= static_cast<uint64_t>(static_cast<unsigned char>(data_[pos_ + i])) << (8 * i);
    pos_ += bytes;
    return true;
  }
  bool Bytes(uint64_t n, std::string* out) {
    if (data_.size() - pos_ < n) return false;
    out->assign(data_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

Status Corrupt(const std::string& why) {
  return Status(Code::kStorage, "snapshot bundle is corrupt: " + why);
}

}  // namespace

std::string EncodeSnapshotBundle(const SnapshotBundle& bundle) {
  size_t size = kMagic.size() + 4 + 8 + 4 + 8;
  for (const auto& f : bundle.files) size += 4 + f.suffix.size() + 8 + f.data.size();
  std::string out;
  out.reserve(size);
  out.append(kMagic);
  PutInt(out, bundle.shard, 4);
  PutInt(out, bundle.applied_index, 8);
  PutInt(out, bundle.files.size(), 4);
  for (const auto& f : bundle.files) {
    PutInt(out, f.suffix.size(), 4);
    out.append(f.suffix);
    PutInt(out, f.data.size(), 8);
    out.append(f.data);
  }
  PutInt(out, StableHash(out), 8);
  return out;
}

Result<SnapshotBundle> DecodeSnapshotBundle(std::string_view blob) {
  if (blob.size() < kMagic.size() + 8 || blob.substr(0, kMagic.size()) != kMagic) {
    return Corrupt("not a RaftMetrics snapshot");
  }
  std::string_view body = blob.substr(0, blob.size() - 8);
  Reader tail(blob.substr(blob.size() - 8));
  uint64_t hash = 0;
  tail.Int(8, &hash);
  if (hash != StableHash(body)) return Corrupt("checksum mismatch");

  Reader r(body.substr(kMagic.size()));
  SnapshotBundle bundle;
  uint64_t shard = 0, count = 0;
  if (!r.Int(4, &shard) || !r.Int(8, &bundle.applied_index) || !r.Int(4, &count)) return Corrupt("short header");
  bundle.shard = static_cast<uint32_t>(shard);
  for (uint64_t i = 0; i < count; ++i) {
    SnapshotFile f;
    uint64_t name_len = 0, data_len = 0;
    if (!r.Int(4, &name_len) || !r.Bytes(name_len, &f.suffix) || !r.Int(8, &data_len) ||
        !r.Bytes(data_len, &f.data)) {
      return Corrupt("truncated file " + std::to_string(i));
    }
    // Only the two files a shard has: a suffix is joined to a path on install.
    if (f.suffix != "" && f.suffix != ".wal") return Corrupt("unexpected file suffix");
    bundle.files.push_back(std::move(f));
  }
  if (r.pos() != body.size() - kMagic.size()) return Corrupt("trailing bytes");
  return bundle;
}

}  // namespace rm
