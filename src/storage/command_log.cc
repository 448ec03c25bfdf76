#include "src/storage/command_log.h"

#include "src/common/hash.h"
#include "src/storage/file_sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace rm {
namespace {

constexpr size_t kHeaderBytes = 4 + 8 + 8;
// A record larger than this is a corrupt length, not a command (a request body
// is at most 64 MiB by default).
constexpr uint32_t kMaxPayloadBytes = 1u << 30;
// The top bit of the length field marks the first record of an Append (one
// fdatasync): see Parse.
constexpr uint32_t kFirstOfAppend = 1u << 31;

Status LogError(const std::string& operation, const std::string& path, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return Status(Code::kStorageFull, "Failed to write data: the disk is full",
                  {{"storage_type", "duckdb"}, {"operation", operation}, {"reason", "disk_full"},
                   {"error", std::string("command log ") + path + ": " + std::strerror(err)}});
  }
  return Status(Code::kStorage, "Storage operation failed",
                {{"storage_type", "duckdb"}, {"operation", operation},
                 {"reason", std::string("command log ") + path + ": " + std::strerror(err)}});
}

uint64_t Checksum(uint32_t length, uint64_t index, std::string_view payload) {
  // The header fields are mixed in so that a record moved or re-indexed by a
  // bad write does not pass either.
  return StableHash(payload) ^ (index * 0x9E3779B97F4A7C15ULL) ^ (static_cast<uint64_t>(length) << 17);
}

void PutU32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

Status ReadFd(int fd, const std::string& path, std::string* out) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return LogError("open", path, errno);
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    ssize_t n = ::pread(fd, out->data() + done, out->size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LogError("open", path, errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  return Status::Ok();
}

// The record at `pos` if it is whole and its checksum holds: its byte length
// and whether it begins an Append; nullopt otherwise.
struct Parsed {
  size_t bytes;
  uint64_t index;
  bool first_of_append;
};
std::optional<Parsed> RecordAt(const std::string& data, size_t pos) {
  if (data.size() - pos < kHeaderBytes) return std::nullopt;
  const uint32_t field = GetU32(data.data() + pos);
  const uint32_t length = field & ~kFirstOfAppend;
  const uint64_t index = GetU64(data.data() + pos + 4);
  const uint64_t sum = GetU64(data.data() + pos + 12);
  if (length > kMaxPayloadBytes || data.size() - pos - kHeaderBytes < length) return std::nullopt;
  if (Checksum(field, index, std::string_view(data.data() + pos + kHeaderBytes, length)) != sum) return std::nullopt;
  return Parsed{kHeaderBytes + length, index, (field & kFirstOfAppend) != 0};
}

// The whole records at the start of `data`; `*valid` is their byte length.
//
// What follows the first bad record is a torn tail when it can only be the last
// Append, never synced (so never acknowledged): cut off. But a whole record
// after the bad bytes that begins an Append was written after the Append
// holding the bad bytes had been synced: acknowledged records are damaged, and
// the log is refused (kStorage) rather than silently shortened. Later records
// are looked for at every offset, with an index above the last good one (cheap
// to reject), only when a bad record was found.
Result<std::vector<CommandLog::Record>> Parse(const std::string& data, const std::string& path, uint64_t* valid) {
  std::vector<CommandLog::Record> records;
  size_t pos = 0;
  uint64_t last_index = 0;
  while (auto r = RecordAt(data, pos)) {
    records.push_back({r->index, data.substr(pos + kHeaderBytes, r->bytes - kHeaderBytes)});
    last_index = r->index;
    pos += r->bytes;
  }
  *valid = pos;
  for (size_t p = pos + 1; p + kHeaderBytes <= data.size(); ++p) {
    const uint64_t index = GetU64(data.data() + p + 4);
    if (index <= last_index || index - last_index > (1u << 30)) continue;
    auto r = RecordAt(data, p);
    if (!r) continue;
    if (r->first_of_append) {
      return Status(Code::kStorage, "Storage operation failed",
                    {{"storage_type", "duckdb"}, {"operation", "open"},
                     {"reason", "command log " + path + " is damaged at byte " + std::to_string(pos) +
                                    ", before records that were acknowledged later; the shard does not open "
                                    "rather than lose them"}});
    }
    p += r->bytes - 1;
  }
  return records;
}

}  // namespace

Result<std::vector<CommandLog::Record>> CommandLog::ReadAll(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::vector<Record>{};
    return LogError("open", path, errno);
  }
  std::string data;
  Status s = ReadFd(fd, path, &data);
  ::close(fd);
  if (!s.ok()) return s;
  uint64_t valid = 0;
  return Parse(data, path, &valid);
}

Result<std::unique_ptr<CommandLog>> CommandLog::Open(const std::string& path, std::vector<Record>* records) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    // The new file's entry must be durable before records synced into it count.
    if (fd >= 0) SyncDirectoryOf(path);
  }
  if (fd < 0) return LogError("open", path, errno);
  std::string data;
  Status s = ReadFd(fd, path, &data);
  if (!s.ok()) {
    ::close(fd);
    return s;
  }
  uint64_t valid = 0;
  auto parsed = Parse(data, path, &valid);
  if (!parsed.ok()) {
    ::close(fd);
    return parsed.status();
  }
  *records = std::move(*parsed);
  if (valid < data.size() && ::ftruncate(fd, static_cast<off_t>(valid)) != 0) {
    s = LogError("open", path, errno);
    ::close(fd);
    return s;
  }
  return std::unique_ptr<CommandLog>(new CommandLog(path, fd, valid));
}

CommandLog::~CommandLog() { ::close(fd_); }

namespace {

std::string Encode(const std::vector<std::pair<uint64_t, std::string_view>>& records) {
  std::string buf;
  size_t total = 0;
  for (const auto& [index, payload] : records) total += kHeaderBytes + payload.size();
  buf.reserve(total);
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& [index, payload] = records[i];
    const auto field = static_cast<uint32_t>(payload.size()) | (i == 0 ? kFirstOfAppend : 0);
    PutU32(buf, field);
    PutU64(buf, index);
    PutU64(buf, Checksum(field, index, payload));
    buf.append(payload);
  }
  return buf;
}

}  // namespace

bool CommandLog::WriteRecords(int fd, uint64_t offset, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    done += static_cast<size_t>(n);
  }
  return ::fdatasync(fd) == 0;
}

Status CommandLog::Append(const std::vector<std::pair<uint64_t, std::string_view>>& records) {
  const std::string buf = Encode(records);
  if (!WriteRecords(fd_, size_, buf)) {
    const int err = errno;
    // Cut the partial records off: a later append must follow whole records.
    (void)::ftruncate(fd_, static_cast<off_t>(size_));
    return LogError("insert", path_, err);
  }
  size_ += buf.size();
  return Status::Ok();
}

Status CommandLog::Rewrite(const std::vector<std::pair<uint64_t, std::string_view>>& records) {
  if (records.empty()) return Clear();
  const std::string buf = Encode(records);
  const std::string tmp = path_ + ".new";
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return LogError("insert", tmp, errno);
  if (!WriteRecords(fd, 0, buf) || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return LogError("insert", path_, err);
  }
  SyncDirectoryOf(path_);  // the rename must be durable before the old records count as gone
  ::close(fd_);
  fd_ = fd;
  size_ = buf.size();
  return Status::Ok();
}

Status CommandLog::Clear() {
  if (size_ == 0) return Status::Ok();
  if (::ftruncate(fd_, 0) != 0) return LogError("insert", path_, errno);
  // The file is empty now, whether or not the sync below succeeds: appends
  // start at 0, never after a hole (which a replay would stop at).
  size_ = 0;
  if (::fdatasync(fd_) != 0) return LogError("insert", path_, errno);
  return Status::Ok();
}

}  // namespace rm
