// Status and Result<T>: expected errors as values across module boundaries.
//
// A Status carries a closed error code a caller can act on, a human message,
// and optional structured details (the `details` object of the seed's error
// shape). The mapping from code to HTTP status and seed error code lives in
// exactly one place: src/net/error_response.cc.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>

namespace rm {

enum class Code {
  kOk,
  kValidation,       // a request field is invalid (VALIDATION_ERROR, 400)
  kInvalidRequest,   // malformed body or parameters (INVALID_REQUEST, 400)
  kUnauthenticated,  // no, unknown or expired credential (AUTH_ERROR, 401)
  kForbidden,        // a credential not allowed here (AUTH_ERROR, 403)
  kNotFound,         // NOT_FOUND, 404
  kMethodNotAllowed, // METHOD_NOT_ALLOWED, 405
  kPayloadTooLarge,  // PAYLOAD_TOO_LARGE, 413
  kRateLimited,      // RATE_LIMIT_EXCEEDED, 429
  kUnavailable,      // a shard or worker cannot be reached (503)
  kTimeout,          // a deadline passed (503)
  kRaft,             // no quorum / no leader for a shard (RAFT_ERROR, 503)
  kStorage,          // DuckDB or the file system failed (STORAGE_ERROR, 500)
  kStorageFull,      // the disk is full (STORAGE_ERROR, 507)
  kInternal,         // a bug or an unexpected state (INTERNAL_ERROR, 500)
};

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message, nlohmann::json details = nlohmann::json::object())
      : code_(code), message_(std::move(message)), details_(std::move(details)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const nlohmann::json& details() const { return details_; }
  nlohmann::json& mutable_details() { return details_; }

  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  nlohmann::json details_ = nlohmann::json::object();
};

// Result<T> holds either a value or a non-OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status(Code::kInternal, "Result built from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

// Aborts the process with a message: for broken invariants, never for bad input.
[[noreturn]] void Panic(const char* file, int line, const std::string& message);

}  // namespace rm

#define RM_CHECK(cond, msg)                                   \
  do {                                                        \
    if (!(cond)) ::rm::Panic(__FILE__, __LINE__, (msg));      \
  } while (0)
