#include "src/observability/logging.h"

#include "src/common/request_context.h"
#include "src/common/time_util.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <optional>
#include <cstdio>
#include <unistd.h>

namespace rm {

namespace {

std::string& NodeId() {
  static std::string id;
  return id;
}

std::optional<spdlog::level::level_enum> ParseLevel(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::pair<const char*, spdlog::level::level_enum> kNames[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},  {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"warning", spdlog::level::warn}, {"error", spdlog::level::err},
      {"err", spdlog::level::err},     {"critical", spdlog::level::critical}, {"off", spdlog::level::off}};
  for (const auto& [name, level] : kNames) {
    if (text == name) return level;
  }
  return std::nullopt;
}

// RUST_LOG: comma-separated directives, each "level" or "target=level".
std::optional<spdlog::level::level_enum> ParseRustLog(const std::string& text) {
  std::optional<spdlog::level::level_enum> bare, ours;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string d = text.substr(pos, comma - pos);
    pos = comma + 1;
    size_t eq = d.find('=');
    if (eq == std::string::npos) {
      if (auto l = ParseLevel(d)) bare = l;
    } else if (d.substr(0, eq) == "raftmetrics") {
      ours = ParseLevel(d.substr(eq + 1));
    }
  }
  return ours ? ours : bare;
}

// [rid=<id>] while a request is served, nothing otherwise.
class RequestIdFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string& id = CurrentRequestId();
    if (id.empty()) return;
    dest.append(std::string_view("[rid="));
    dest.append(std::string_view(id));
    dest.append(std::string_view("] "));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<RequestIdFlag>(); }
};

class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(msg.time.time_since_epoch()).count();
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line = "{\"ts\":\"" + FormatIso8601(micros) +
                       "\",\"level\":\"" + std::string(level.data(), level.size()) + "\",\"pid\":" +
                       std::to_string(getpid());
    if (!NodeId().empty()) line += ",\"node\":\"" + JsonEscape(NodeId()) + "\"";
    const std::string& id = CurrentRequestId();
    if (!id.empty()) line += ",\"request_id\":\"" + JsonEscape(id) + "\"";
    line += ",\"msg\":\"" + JsonEscape(std::string_view(msg.payload.data(), msg.payload.size())) + "\"}\n";
    dest.append(std::string_view(line));
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

Result<LogSettings> LogSettingsFromEnv(const char* log_level, const char* rust_log, const char* log_format) {
  LogSettings s;
  if (rust_log && *rust_log) {
    auto l = ParseRustLog(rust_log);
    if (!l) return Status(Code::kValidation, std::string("RUST_LOG: no level in \"") + rust_log + "\"");
    s.level = *l;
  }
  if (log_level && *log_level) {
    auto l = ParseLevel(log_level);
    if (!l) {
      return Status(Code::kValidation, std::string("LOG_LEVEL must be trace, debug, info, warn, error, "
                                                   "critical or off, not \"") + log_level + "\"");
    }
    s.level = *l;
  }
  if (log_format && *log_format) {
    std::string f = log_format;
    if (f == "json") s.json = true;
    else if (f != "text") return Status(Code::kValidation, "LOG_FORMAT must be text or json, not \"" + f + "\"");
  }
  return s;
}

void ConfigureLogging(const LogSettings& settings) {
  spdlog::set_level(settings.level);
  if (settings.json) {
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
  } else {
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<RequestIdFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%P] %*%v");
    spdlog::set_formatter(std::move(f));
  }
}

void SetLogNodeId(const std::string& node_id) { NodeId() = node_id; }

}  // namespace rm
