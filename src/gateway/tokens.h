// Bearer tokens of the public API and the cluster secret of node-to-node calls.
//
// Tokens come from AUTH_TOKENS (comma-separated plain tokens) and/or a tokens
// file (`--tokens-file`): one `name:token` per line, optionally with an expiry,
// `name:token:2026-12-31T00:00:00Z`; blank lines and `#` comments are skipped.
// Comparisons run in constant time over every configured token, so response
// times do not reveal how much of a guess was right. Tokens are never logged:
// only their names are.
#pragma once

#include "src/common/status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rm {

struct TokenEntry {
  std::string name;                 // for logs and rate-limit keys; never the token
  std::string token;
  std::optional<int64_t> expires_us;
};

enum class TokenStatus { kValid, kMissing, kInvalid, kExpired };
const char* TokenStatusName(TokenStatus status);  // "valid", "missing", ...

struct TokenCheck {
  TokenStatus status = TokenStatus::kMissing;
  const TokenEntry* entry = nullptr;  // set for kValid and kExpired
};

class TokenStore {
 public:
  TokenStore() = default;
  // Parses AUTH_TOKENS text and the tokens file (either may be empty).
  static Result<TokenStore> Load(const std::string& auth_tokens, const std::string& tokens_file);
  // Parses the contents of a tokens file; `origin` names it in errors.
  static Result<std::vector<TokenEntry>> ParseFile(const std::string& text, const std::string& origin);

  // No tokens configured: the API is open (a warning is logged at start).
  bool enabled() const { return !entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // `token` is the bearer credential (nullopt when the request had none).
  TokenCheck Check(std::optional<std::string_view> token, int64_t now_us) const;
  // A secret for node-to-node calls when CLUSTER_SECRET is not set: a hash of
  // every configured token, so nodes given the same tokens agree on it.
  std::string DerivedClusterSecret() const;

 private:
  explicit TokenStore(std::vector<TokenEntry> entries) : entries_(std::move(entries)) {}
  std::vector<TokenEntry> entries_;
};

// The credential of an "Authorization: Bearer <token>" header (scheme
// case-insensitive); nullopt when the header is absent or not a bearer one.
std::optional<std::string_view> BearerToken(std::string_view authorization);

// A fresh random token: 32 hex digits (128 bits from the OS's random source).
std::string GenerateToken();

// Equality whose running time depends only on the lengths, not the contents.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace rm
