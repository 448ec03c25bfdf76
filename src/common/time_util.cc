#include "src/common/time_util.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace rm {
namespace {

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly n digits at text[pos]; advances pos.
bool Digits(std::string_view text, size_t& pos, int n, int& out) {
  if (pos + n > text.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

bool Expect(std::string_view text, size_t& pos, char c) {
  if (pos < text.size() && text[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

}  // namespace

std::optional<int64_t> ParseIso8601(std::string_view text) {
  size_t pos = 0;
  int year, month, day;
  if (!Digits(text, pos, 4, year) || !Expect(text, pos, '-') || !Digits(text, pos, 2, month) ||
      !Expect(text, pos, '-') || !Digits(text, pos, 2, day)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > static_cast<int>(DaysInMonth(year, month))) {
    return std::nullopt;
  }
  int hour = 0, minute = 0, second = 0;
  int64_t frac_us = 0;
  int64_t offset_s = 0;
  if (pos < text.size()) {
    char sep = text[pos];
    if (sep != 'T' && sep != 't' && sep != ' ') return std::nullopt;
    ++pos;
    if (!Digits(text, pos, 2, hour) || !Expect(text, pos, ':') || !Digits(text, pos, 2, minute)) {
      return std::nullopt;
    }
    if (Expect(text, pos, ':')) {
      if (!Digits(text, pos, 2, second)) return std::nullopt;
      if (Expect(text, pos, '.') || Expect(text, pos, ',')) {
        int n = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (n < 6) frac_us = frac_us * 10 + (text[pos] - '0');
          ++n;
          ++pos;
        }
        if (n == 0 || n > 9) return std::nullopt;
        for (int i = n; i < 6; ++i) frac_us *= 10;
      }
    }
    // 23:59:60 (a leap second) is not representable in micros-since-epoch; refuse it.
    if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
    if (pos < text.size()) {
      char z = text[pos];
      if (z == 'Z' || z == 'z') {
        ++pos;
      } else if (z == '+' || z == '-') {
        ++pos;
        int oh = 0, om = 0;
        if (!Digits(text, pos, 2, oh)) return std::nullopt;
        if (pos < text.size()) {
          Expect(text, pos, ':');
          if (!Digits(text, pos, 2, om)) return std::nullopt;
        }
        if (oh > 23 || om > 59) return std::nullopt;
        offset_s = (oh * 3600 + om * 60) * (z == '+' ? 1 : -1);
      } else {
        return std::nullopt;
      }
    }
  }
  if (pos != text.size()) return std::nullopt;
  if (year < 1 || year > 9999) return std::nullopt;
  int64_t days = DaysFromCivil(year, month, day);
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return secs * 1000000 + frac_us;
}

namespace {

// 9999-12-31T23:59:59.999999Z, the last instant ISO 8601 (four-digit years) can name.
constexpr int64_t kMaxMicros = 253402300799999999;

// Splits `text` into the integer and fraction digits of the epoch grammar;
// false when it is not the grammar.
bool SplitEpoch(std::string_view text, std::string_view& whole, std::string_view& frac) {
  const size_t dot = text.find('.');
  whole = text.substr(0, dot);
  frac = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && frac.empty())) return false;
  for (std::string_view part : {whole, frac}) {
    for (char c : part) {
      if (c < '0' || c > '9') return false;
    }
  }
  return true;
}

// The unit by magnitude: N < 1e11 has at most 11 significant digits, and so on.
EpochUnit UnitByMagnitude(std::string_view whole) {
  const size_t first = whole.find_first_not_of('0');
  const size_t digits = first == std::string_view::npos ? 0 : whole.size() - first;
  if (digits <= 11) return EpochUnit::kSeconds;
  if (digits <= 14) return EpochUnit::kMillis;
  if (digits <= 17) return EpochUnit::kMicros;
  return EpochUnit::kNanos;
}

// Decimal places from `unit` to microseconds (negative: places dropped).
int MicrosShift(EpochUnit unit) {
  switch (unit) {
    case EpochUnit::kSeconds: return 6;
    case EpochUnit::kMillis: return 3;
    case EpochUnit::kMicros: return 0;
    case EpochUnit::kNanos: return -3;
  }
  return 0;
}

const char* UnitName(EpochUnit unit) {
  switch (unit) {
    case EpochUnit::kSeconds: return "seconds";
    case EpochUnit::kMillis: return "milliseconds";
    case EpochUnit::kMicros: return "microseconds";
    case EpochUnit::kNanos: return "nanoseconds";
  }
  return "seconds";
}

}  // namespace

std::optional<EpochUnit> ParseEpochUnit(std::string_view name) {
  if (name == "s") return EpochUnit::kSeconds;
  if (name == "ms") return EpochUnit::kMillis;
  // "\xc2\xb5" is U+00B5 MICRO SIGN, "\xce\xbc" U+03BC GREEK SMALL LETTER MU: both get typed.
  if (name == "us" || name == "u" || name == "\xc2\xb5s" || name == "\xce\xbcs") return EpochUnit::kMicros;
  if (name == "ns" || name == "n") return EpochUnit::kNanos;
  return std::nullopt;
}

std::optional<int64_t> ParseEpoch(std::string_view text, std::optional<EpochUnit> unit) {
  std::string_view whole, frac;
  if (!SplitEpoch(text, whole, frac)) return std::nullopt;
  // Microseconds are the digits shifted by the unit's decimal places: exact for
  // any length, so nanoseconds past uint64 (year 2554) still read right.
  const int shift = MicrosShift(unit.value_or(UnitByMagnitude(whole)));
  const size_t dropped = shift < 0 ? std::min(whole.size(), static_cast<size_t>(-shift)) : 0;
  int64_t micros = 0;
  auto push = [&micros](char c) {
    const int digit = c - '0';
    if (micros > (kMaxMicros - digit) / 10) return false;
    micros = micros * 10 + digit;
    return true;
  };
  for (size_t i = 0; i + dropped < whole.size(); ++i) {
    if (!push(whole[i])) return std::nullopt;
  }
  for (int i = 0; i < shift; ++i) {
    if (!push(static_cast<size_t>(i) < frac.size() ? frac[i] : '0')) return std::nullopt;
  }
  return micros;
}

std::optional<int64_t> ParseTimestamp(std::string_view text, std::optional<EpochUnit> unit) {
  // An ISO 8601 timestamp has a '-' at [4]; an epoch time never has one.
  if (text.size() > 4 && text[4] == '-') return ParseIso8601(text);
  return ParseEpoch(text, unit);
}

std::string BadTimestampError(std::string_view text, std::optional<EpochUnit> unit) {
  std::string_view whole, frac;
  std::string out;
  if (!text.empty() && text[0] == '-' && SplitEpoch(text.substr(1), whole, frac)) {
    out = "is a negative epoch time (write instants before 1970 in ISO 8601); ";
  } else if (SplitEpoch(text, whole, frac)) {
    out = "is after 9999-12-31T23:59:59.999999Z as epoch ";
    out += UnitName(unit.value_or(UnitByMagnitude(whole)));
    out += unit ? " (from ?precision=); " : " (from its magnitude); ";
  }
  out += kTimestampForms;
  return out;
}

std::string FormatIso8601(int64_t micros) {
  int64_t secs = micros / 1000000;
  int64_t us = micros % 1000000;
  if (us < 0) {
    us += 1000000;
    secs -= 1;
  }
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, y, m, d);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                        static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                        static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60));
  std::string out(buf, n);
  if (us != 0) {
    n = std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(us));
    out.append(buf, n);
  }
  out += 'Z';
  return out;
}

std::optional<int64_t> ParseDuration(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  int64_t unit;
  switch (text.back()) {
    case 's': unit = 1000000LL; break;
    case 'm': unit = 60LL * 1000000; break;
    case 'h': unit = 3600LL * 1000000; break;
    case 'd': unit = 86400LL * 1000000; break;
    default: return std::nullopt;
  }
  // Over a century is surely a typo; the cap also keeps n * unit far from overflow.
  constexpr int64_t kMaxMicros = 100LL * 365 * 86400 * 1000000;
  int64_t n = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    char c = text[i];
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
    if (n > kMaxMicros / unit) return std::nullopt;
  }
  if (n <= 0) return std::nullopt;
  return n * unit;
}

std::string FormatUptime(int64_t seconds) {
  int64_t d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60, s = seconds % 60;
  char buf[64];
  if (d > 0) {
    std::snprintf(buf, sizeof buf, "%lldd %lldh %lldm", static_cast<long long>(d),
                  static_cast<long long>(h), static_cast<long long>(m));
  } else if (h > 0) {
    std::snprintf(buf, sizeof buf, "%lldh %lldm", static_cast<long long>(h),
                  static_cast<long long>(m));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm %llds", static_cast<long long>(m),
                  static_cast<long long>(s));
  }
  return buf;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1023.95 && u < 5) {  // 1023.95 would print as "1024.0"
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f%s", v, kUnits[u]);
  }
  return buf;
}

}  // namespace rm
