// Log set-up for every node: spdlog to stderr, as text or as JSON lines.
//
//   LOG_LEVEL   trace|debug|info|warn|error|critical|off (default info)
//   RUST_LOG    the seeds' variable: "debug", or "raftmetrics=debug,other=info"
//               (our target's level, else the bare level); LOG_LEVEL wins
//   LOG_FORMAT  text (default) | json
//
// Every line written while a request is being served carries its request id
// (see src/common/request_context.h): `[rid=...]` in text, "request_id" in JSON.
// Tokens and the cluster secret are never passed to the logger.
#pragma once

#include "src/common/status.h"

#include <spdlog/common.h>

#include <string>

namespace rm {

struct LogSettings {
  spdlog::level::level_enum level = spdlog::level::info;
  bool json = false;
};

// From the variables above; an unknown value is an error naming it.
Result<LogSettings> LogSettingsFromEnv(const char* log_level, const char* rust_log, const char* log_format);

// Installs the format and level on the default logger.
void ConfigureLogging(const LogSettings& settings);
// The node id written on every JSON line ("" until known).
void SetLogNodeId(const std::string& node_id);

// Escapes text for a JSON string literal (without the quotes).
std::string JsonEscape(std::string_view text);

}  // namespace rm
