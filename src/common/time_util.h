// Time parsing and formatting. All instants are int64 microseconds since the
// Unix epoch, UTC.
//
// A timestamp a client sends (ParseTimestamp) is ISO 8601 or an epoch time.
//
// ISO 8601 (ParseIso8601), grammar:
//   date      = YYYY "-" MM "-" DD
//   time      = hh ":" mm [":" ss ["." 1*9DIGIT]]
//   zone      = "Z" | ("+"|"-") hh [":"] mm | ("+"|"-") hh
//   timestamp = date [("T"|"t"|" ") time [zone]]
// A timestamp without a zone is UTC. Fractions beyond microseconds are truncated.
//
// Epoch time (ParseEpoch), grammar (no sign, exponent or spaces):
//   epoch     = 1*DIGIT ["." 1*DIGIT]
// It counts seconds, milliseconds, microseconds or nanoseconds since
// 1970-01-01T00:00:00Z. The unit is the caller's (a request's `precision`, see
// ParseEpochUnit; ISO 8601 ignores it) or else follows from the magnitude of the
// integer part N (leading zeros do not count):
//   N < 1e11          seconds       1970-01-01T00:00:00Z .. 5138-11-16T09:46:39Z
//   1e11 <= N < 1e14  milliseconds  1973-03-03T09:46:40Z .. 5138-11-16T09:46:39.999Z
//   1e14 <= N < 1e17  microseconds  1973-03-03T09:46:40Z .. 5138-11-16T09:46:39.999999Z
//   N >= 1e17         nanoseconds   1973-03-03T09:46:40Z .. 9999-12-31T23:59:59.999999999Z
// So without a precision every unit reads right from 1973-03-03T09:46:40Z to
// year 5138; earlier instants in ms, us or ns need the precision (or ISO 8601).
// A string of digits is always an epoch time: "20240120" is seconds, not ISO
// 8601's basic format (which is not accepted). A fraction is allowed in every
// unit; digits beyond a microsecond are truncated, as in ISO 8601. The instant
// must not be after 9999-12-31T23:59:59.999999Z, the end of ISO 8601's range.
// Negative epoch times are refused: instants before 1970 are written in ISO 8601.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rm {

// Returns micros since epoch, or nullopt when `text` is not a valid timestamp
// (including out-of-range fields such as month 13 or Feb 30).
std::optional<int64_t> ParseIso8601(std::string_view text);

// The unit of an epoch time.
enum class EpochUnit { kSeconds, kMillis, kMicros, kNanos };

// A `precision` value, InfluxDB's names: "s", "ms", "us", "ns"; also "u", "µs"
// (micro sign or Greek mu) and "n". Case matters ("S" is refused). nullopt for
// any other text; kPrecisionError is then the error to report.
std::optional<EpochUnit> ParseEpochUnit(std::string_view name);
inline constexpr std::string_view kPrecisionError =
    "must be one of s, ms, us, ns (u and µs also mean us, n means ns): the unit of epoch timestamps";

// An epoch time (grammar above) in `unit`, or by magnitude when unit is nullopt.
// nullopt when `text` is not the grammar or the instant is after year 9999.
std::optional<int64_t> ParseEpoch(std::string_view text, std::optional<EpochUnit> unit);

// ISO 8601 or an epoch time: every timestamp a request carries goes through
// here. `unit` applies to epoch times only. nullopt when neither; then
// BadTimestampError says why.
std::optional<int64_t> ParseTimestamp(std::string_view text, std::optional<EpochUnit> unit);

// The error for a `text` that ParseTimestamp refused: what is wrong when that is
// more than "not a timestamp" (negative, after year 9999 in this unit), always
// followed by kTimestampForms.
std::string BadTimestampError(std::string_view text, std::optional<EpochUnit> unit);
inline constexpr std::string_view kTimestampForms =
    "must be an ISO 8601 timestamp (2024-01-20T15:30:00Z) or epoch seconds, milliseconds, "
    "microseconds or nanoseconds (a number or a string of digits such as 1705764600; unit from "
    "?precision=s|ms|us|ns, else from its magnitude)";

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
