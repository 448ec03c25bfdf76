// Time parsing and formatting. All instants are int64 microseconds since the
// Unix epoch, UTC.
//
// Accepted ISO 8601 forms (grammar):
//   date      = YYYY "-" MM "-" DD
//   time      = hh ":" mm [":" ss ["." 1*9DIGIT]]
//   zone      = "Z" | ("+"|"-") hh [":"] mm | ("+"|"-") hh
//   timestamp = date [("T"|"t"|" ") time [zone]]
// A timestamp without a zone is UTC. Fractions beyond microseconds are truncated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rm {

// Returns micros since epoch, or nullopt when `text` is not a valid timestamp
// (including out-of-range fields such as month 13 or Feb 30).
std::optional<int64_t> ParseIso8601(std::string_view text);

// Formats as "2024-01-20T15:30:00Z", with ".ffffff" only when not whole seconds.
std::string FormatIso8601(int64_t micros);

// Parses a duration "Ns|Nm|Nh|Nd" (N a positive integer) into microseconds.
std::optional<int64_t> ParseDuration(std::string_view text);

// "2d 15h 30m" style, as seed 001's uptime.
std::string FormatUptime(int64_t seconds);

// Wall clock, micros since epoch.
int64_t NowMicros();

// "1.2GB" style byte counts, as seed 001's storage sizes.
std::string FormatBytes(uint64_t bytes);

}  // namespace rm
