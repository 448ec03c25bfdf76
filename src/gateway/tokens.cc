#include "src/gateway/tokens.h"

#include "src/common/hash.h"
#include "src/common/time_util.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

namespace rm {

const char* TokenStatusName(TokenStatus status) {
  switch (status) {
    case TokenStatus::kValid: return "valid";
    case TokenStatus::kMissing: return "missing";
    case TokenStatus::kInvalid: return "invalid";
    case TokenStatus::kExpired: return "expired";
  }
  return "invalid";
}

namespace {

std::string Trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r"));
  s.erase(s.find_last_not_of(" \t\r") + 1);
  return s;
}

bool ValidTokenText(const std::string& token) {
  // Visible ASCII without separators: what fits in a header unquoted.
  if (token.empty() || token.size() > 512) return false;
  return std::all_of(token.begin(), token.end(),
                     [](unsigned char c) { return c > 0x20 && c < 0x7f && c != ','; });
}

}  // namespace

Result<std::vector<TokenEntry>> TokenStore::ParseFile(const std::string& text, const std::string& origin) {
  std::vector<TokenEntry> out;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    auto where = origin + ":" + std::to_string(number);
    size_t first = line.find(':');
    if (first == std::string::npos || first == 0) {
      return Status(Code::kInvalidRequest, where + ": expected name:token[:expiry]");
    }
    TokenEntry e;
    e.name = Trim(line.substr(0, first));
    size_t second = line.find(':', first + 1);
    e.token = Trim(line.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1));
    if (second != std::string::npos) {
      std::string expiry = Trim(line.substr(second + 1));
      auto at = ParseIso8601(expiry);
      if (!at) return Status(Code::kInvalidRequest, where + ": expiry is not an ISO 8601 timestamp");
      e.expires_us = *at;
    }
    if (!ValidTokenText(e.token)) {
      return Status(Code::kInvalidRequest, where + ": token must be 1-512 visible ASCII characters");
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<TokenStore> TokenStore::Load(const std::string& auth_tokens, const std::string& tokens_file) {
  std::vector<TokenEntry> entries;
  size_t n = 0;
  size_t pos = 0;
  while (pos <= auth_tokens.size()) {
    size_t comma = auth_tokens.find(',', pos);
    if (comma == std::string::npos) comma = auth_tokens.size();
    std::string token = Trim(auth_tokens.substr(pos, comma - pos));
    pos = comma + 1;
    if (token.empty()) continue;
    if (!ValidTokenText(token)) {
      return Status(Code::kInvalidRequest, "AUTH_TOKENS: token " + std::to_string(n + 1) +
                                               " must be 1-512 visible ASCII characters");
    }
    entries.push_back({"env-" + std::to_string(++n), token, std::nullopt});
  }
  if (!tokens_file.empty()) {
    std::ifstream f(tokens_file);
    if (!f) return Status(Code::kInvalidRequest, "cannot read tokens file " + tokens_file);
    std::stringstream buf;
    buf << f.rdbuf();
    auto parsed = ParseFile(buf.str(), tokens_file);
    if (!parsed.ok()) return parsed.status();
    for (auto& e : *parsed) entries.push_back(std::move(e));
  }
  return TokenStore(std::move(entries));
}

TokenCheck TokenStore::Check(std::optional<std::string_view> token, int64_t now_us) const {
  if (!token || token->empty()) return {TokenStatus::kMissing, nullptr};
  // Compare against every entry, without stopping at a match.
  const TokenEntry* match = nullptr;
  for (const auto& e : entries_) {
    bool eq = ConstantTimeEquals(*token, e.token);
    if (eq && !match) match = &e;
  }
  if (!match) return {TokenStatus::kInvalid, nullptr};
  if (match->expires_us && now_us >= *match->expires_us) return {TokenStatus::kExpired, match};
  return {TokenStatus::kValid, match};
}

std::string TokenStore::DerivedClusterSecret() const {
  std::vector<std::string> tokens;
  for (const auto& e : entries_) tokens.push_back(e.token);
  std::sort(tokens.begin(), tokens.end());
  std::string joined = "raftmetrics-cluster-secret";
  for (const auto& t : tokens) joined += "\n" + t;
  // Two independent 64-bit hashes: 128 bits that only holders of every token can compute.
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(StableHash(joined)),
                static_cast<unsigned long long>(StableHash("salt:" + joined)));
  return std::string("derived-") + buf;
}

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  size_t start = authorization.find_first_not_of(' ');
  if (start == std::string_view::npos) return std::nullopt;
  authorization.remove_prefix(start);
  if (authorization.size() < 7) return std::nullopt;
  static constexpr std::string_view kScheme = "bearer ";
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return std::nullopt;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  return token;
}

std::string GenerateToken() {
  std::random_device rd;  // /dev/urandom on Linux
  std::string out;
  char buf[9];
  for (int i = 0; i < 4; ++i) {
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    out += buf;
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Walk the longer length so the time does not depend on where they differ.
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace rm
