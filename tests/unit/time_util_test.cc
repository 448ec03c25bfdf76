// Tests of src/common/time_util: ISO 8601 and epoch parsing, formatting,
// durations, byte counts and uptimes.
#include "src/common/time_util.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

namespace rm {
namespace {

constexpr int64_t kSecond = 1000000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;
// 2024-01-20T15:30:00Z (computed with Python's datetime).
constexpr int64_t kJan20 = 1705764600LL * kSecond;

TEST(ParseIso8601, UtcZuluTimestamp) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00Z"), kJan20);
  EXPECT_EQ(ParseIso8601("2024-01-20t15:30:00z"), kJan20);
  EXPECT_EQ(ParseIso8601("2024-01-20 15:30:00Z"), kJan20);
  EXPECT_EQ(ParseIso8601("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseIso8601("2000-01-01T00:00:00Z"), 946684800LL * kSecond);
}

TEST(ParseIso8601, MissingZoneMeansUtc) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00"), kJan20);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30"), kJan20);
}

TEST(ParseIso8601, SecondsAreOptional) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30Z"), kJan20);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30+01:00"), kJan20 - kHour);
}

TEST(ParseIso8601, DateOnlyIsMidnightUtc) {
  EXPECT_EQ(ParseIso8601("2024-01-20"), kJan20 - 15 * kHour - 30 * kMinute);
}

TEST(ParseIso8601, PositiveOffsetWithColon) {
  // 17:30 at +02:00 is 15:30 UTC.
  EXPECT_EQ(ParseIso8601("2024-01-20T17:30:00+02:00"), kJan20);
}

TEST(ParseIso8601, NegativeOffsetWithoutColon) {
  // 10:00 at -05:30 is 15:30 UTC.
  EXPECT_EQ(ParseIso8601("2024-01-20T10:00:00-0530"), kJan20);
}

TEST(ParseIso8601, HoursOnlyOffset) {
  EXPECT_EQ(ParseIso8601("2024-01-20T20:30:00+05"), kJan20);
  EXPECT_EQ(ParseIso8601("2024-01-20T10:30:00-05"), kJan20);
}

TEST(ParseIso8601, OffsetCanCrossMidnightAndYear) {
  EXPECT_EQ(ParseIso8601("2024-01-01T01:00:00+02:00"), ParseIso8601("2023-12-31T23:00:00Z"));
}

TEST(ParseIso8601, FractionsAreScaledToMicros) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00.5Z"), kJan20 + 500000);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00.123Z"), kJan20 + 123000);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00.000001Z"), kJan20 + 1);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00,25Z"), kJan20 + 250000);
  EXPECT_EQ(ParseIso8601("2024-01-20T17:30:00.75+02:00"), kJan20 + 750000);
}

TEST(ParseIso8601, FractionsPastMicrosAreTruncatedNotRounded) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00.1234567Z"), kJan20 + 123456);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00.999999999Z"), kJan20 + 999999);
}

TEST(ParseIso8601, FractionOfTenDigitsIsRejected) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00.1234567890Z"), std::nullopt);
}

TEST(ParseIso8601, EmptyFractionIsRejected) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00.Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00."), std::nullopt);
}

TEST(ParseIso8601, LeapDayInLeapYearIsAccepted) {
  EXPECT_EQ(ParseIso8601("2024-02-29T00:00:00Z"), 1709164800LL * kSecond);
  EXPECT_TRUE(ParseIso8601("2000-02-29").has_value());  // divisible by 400
}

TEST(ParseIso8601, LeapDayInCommonYearIsRejected) {
  EXPECT_EQ(ParseIso8601("2023-02-29"), std::nullopt);
  EXPECT_EQ(ParseIso8601("1900-02-29"), std::nullopt);  // divisible by 100, not 400
}

TEST(ParseIso8601, OutOfRangeDateFieldsAreRejected) {
  EXPECT_EQ(ParseIso8601("2024-13-01T00:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-00-10T00:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-00T00:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-02-30T00:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-04-31T00:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("0000-01-01T00:00:00Z"), std::nullopt);
}

TEST(ParseIso8601, OutOfRangeTimeFieldsAreRejected) {
  EXPECT_EQ(ParseIso8601("2024-01-20T24:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T23:60:00Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T23:59:60Z"), std::nullopt);  // leap second
}

TEST(ParseIso8601, OutOfRangeOffsetsAreRejected) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00+24:00"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00+05:60"), std::nullopt);
}

TEST(ParseIso8601, MalformedOffsetsAreRejected) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00+5"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00+05:"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00+05:3"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00+"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00 UTC"), std::nullopt);
}

TEST(ParseIso8601, GarbageIsRejected) {
  for (const char* text : {"", "now", "2024", "2024-01", "2024-1-20", "20240120", "24-01-20",
                           "2024/01/20", "2024-01-20T", "2024-01-20T15", "2024-01-20T15:3",
                           "2024-01-20T1:30:00Z", "2024-01-20X15:30:00Z", "1705764600",
                           "2024-01-20T15:30:00.5.5Z", "2024-01-20T15:30.5Z"}) {
    EXPECT_EQ(ParseIso8601(text), std::nullopt) << text;
  }
}

TEST(ParseIso8601, TrailingCharactersAreRejected) {
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00Z "), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00Zjunk"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00+02:00:00"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20T15:30:00+0200x"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20x"), std::nullopt);
  EXPECT_EQ(ParseIso8601(std::string("2024-01-20T15:30:00Z\0", 21)), std::nullopt);
}

TEST(ParseIso8601, ZoneWithoutTimeIsRejected) {
  EXPECT_EQ(ParseIso8601("2024-01-20Z"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2024-01-20+02:00"), std::nullopt);
}

TEST(ParseIso8601, ExtremeYearsParse) {
  EXPECT_EQ(ParseIso8601("0001-01-01T00:00:00Z"), -62135596800LL * kSecond);
  EXPECT_EQ(ParseIso8601("9999-12-31T23:59:59Z"), 253402300799LL * kSecond);
}

// 9999-12-31T23:59:59.999999Z, the last instant a timestamp may name.
constexpr int64_t kLastMicros = 253402300799999999LL;

TEST(ParseEpoch, EachUnitByMagnitude) {
  EXPECT_EQ(ParseEpoch("1705764600", std::nullopt), kJan20);
  EXPECT_EQ(ParseEpoch("1705764600123", std::nullopt), kJan20 + 123000);
  EXPECT_EQ(ParseEpoch("1705764600123456", std::nullopt), kJan20 + 123456);
  EXPECT_EQ(ParseEpoch("1705764600123456789", std::nullopt), kJan20 + 123456);
}

TEST(ParseEpoch, MagnitudeBoundariesAreOneE11OneE14OneE17) {
  // Below 1e11: seconds; up to 1e14: ms; up to 1e17: us; from 1e17: ns.
  EXPECT_EQ(ParseEpoch("99999999999", std::nullopt), 99999999999LL * kSecond);       // 5138-11-16
  EXPECT_EQ(ParseEpoch("100000000000", std::nullopt), 100000000LL * kSecond);        // 1e11 ms
  EXPECT_EQ(ParseEpoch("99999999999999", std::nullopt), 99999999999999LL * 1000);    // ms
  EXPECT_EQ(ParseEpoch("100000000000000", std::nullopt), 100000000LL * kSecond);     // 1e14 us
  EXPECT_EQ(ParseEpoch("99999999999999999", std::nullopt), 99999999999999999LL);     // us
  EXPECT_EQ(ParseEpoch("100000000000000000", std::nullopt), 100000000LL * kSecond);  // 1e17 ns
  EXPECT_EQ(FormatIso8601(*ParseEpoch("100000000000", std::nullopt)), "1973-03-03T09:46:40Z");
}

TEST(ParseEpoch, LeadingZerosDoNotCountTowardsTheMagnitude) {
  EXPECT_EQ(ParseEpoch("0001705764600", std::nullopt), kJan20);
  EXPECT_EQ(ParseEpoch("0", std::nullopt), 0);
  EXPECT_EQ(ParseEpoch("000000000000000000000", std::nullopt), 0);
}

TEST(ParseEpoch, AGivenUnitOverridesTheMagnitude) {
  EXPECT_EQ(ParseEpoch("1705764600", EpochUnit::kSeconds), kJan20);
  EXPECT_EQ(ParseEpoch("1705764600", EpochUnit::kMillis), 1705764600LL * 1000);
  EXPECT_EQ(ParseEpoch("1705764600", EpochUnit::kMicros), 1705764600LL);
  EXPECT_EQ(ParseEpoch("1705764600", EpochUnit::kNanos), 1705764LL);
  EXPECT_EQ(ParseEpoch("5", EpochUnit::kMillis), 5000);  // by magnitude it would be 5 s
  EXPECT_EQ(ParseEpoch("999", EpochUnit::kNanos), 0);    // under a microsecond
  EXPECT_EQ(ParseEpoch("1705764600123456789", EpochUnit::kNanos), kJan20 + 123456);
}

TEST(ParseEpoch, FractionsInEveryUnitAreTruncatedToMicros) {
  EXPECT_EQ(ParseEpoch("1705764600.123", std::nullopt), kJan20 + 123000);
  EXPECT_EQ(ParseEpoch("1705764600.5", std::nullopt), kJan20 + 500000);
  EXPECT_EQ(ParseEpoch("1705764600.1234569", std::nullopt), kJan20 + 123456);
  EXPECT_EQ(ParseEpoch("1705764600123.4569", std::nullopt), kJan20 + 123456);  // ms
  EXPECT_EQ(ParseEpoch("1705764600123456.9", std::nullopt), kJan20 + 123456);  // us
  EXPECT_EQ(ParseEpoch("1705764600123456789.9", std::nullopt), kJan20 + 123456);
  EXPECT_EQ(ParseEpoch("1.5", EpochUnit::kMillis), 1500);
  EXPECT_EQ(ParseEpoch("0.000001", std::nullopt), 1);
}

TEST(ParseEpoch, OnlyDigitsWithAnOptionalFraction) {
  for (const char* text : {"", ".", ".5", "5.", "1e9", "1E9", "+5", "-5", " 5", "5 ", "5\n", "0x10", "1_000",
                           "1,5", "1705764600.12.3", "1705764600Z", "NaN", "\xd9\xa1"}) {
    EXPECT_EQ(ParseEpoch(text, std::nullopt), std::nullopt) << text;
  }
  EXPECT_EQ(ParseEpoch(std::string("17\0", 3), std::nullopt), std::nullopt);
}

TEST(ParseEpoch, InstantsAfterYear9999AreRefusedWithoutOverflow) {
  EXPECT_EQ(ParseEpoch("253402300799.999999", EpochUnit::kSeconds), kLastMicros);
  EXPECT_EQ(ParseEpoch("253402300800", EpochUnit::kSeconds), std::nullopt);
  EXPECT_EQ(ParseEpoch("253402300799999999999", std::nullopt), kLastMicros);  // ns past uint64
  EXPECT_EQ(ParseEpoch("253402300800000000000", std::nullopt), std::nullopt);
  EXPECT_EQ(ParseEpoch("1705764600123", EpochUnit::kSeconds), std::nullopt);  // year 56000
  EXPECT_EQ(ParseEpoch("18446744073709551616", EpochUnit::kMicros), std::nullopt);
  EXPECT_EQ(ParseEpoch(std::string(400, '9'), std::nullopt), std::nullopt);
}

TEST(ParseEpochUnit, InfluxNamesAndAliases) {
  EXPECT_EQ(ParseEpochUnit("s"), EpochUnit::kSeconds);
  EXPECT_EQ(ParseEpochUnit("ms"), EpochUnit::kMillis);
  EXPECT_EQ(ParseEpochUnit("us"), EpochUnit::kMicros);
  EXPECT_EQ(ParseEpochUnit("u"), EpochUnit::kMicros);
  EXPECT_EQ(ParseEpochUnit("\xc2\xb5s"), EpochUnit::kMicros);  // micro sign
  EXPECT_EQ(ParseEpochUnit("\xce\xbcs"), EpochUnit::kMicros);  // Greek mu
  EXPECT_EQ(ParseEpochUnit("ns"), EpochUnit::kNanos);
  EXPECT_EQ(ParseEpochUnit("n"), EpochUnit::kNanos);
  for (const char* bad : {"", "S", "MS", "sec", "seconds", "m", "h", "ps", " s", "s "}) {
    EXPECT_EQ(ParseEpochUnit(bad), std::nullopt) << bad;
  }
}

TEST(ParseTimestamp, IsoAndEpochBothRead) {
  EXPECT_EQ(ParseTimestamp("2024-01-20T15:30:00Z", std::nullopt), kJan20);
  EXPECT_EQ(ParseTimestamp("2024-01-20T17:30:00+02:00", EpochUnit::kNanos), kJan20);  // unit ignored
  EXPECT_EQ(ParseTimestamp("2024-01-20", std::nullopt), kJan20 - 15 * kHour - 30 * kMinute);
  EXPECT_EQ(ParseTimestamp("1705764600", std::nullopt), kJan20);
  EXPECT_EQ(ParseTimestamp("1705764600000", std::nullopt), kJan20);
  EXPECT_EQ(ParseTimestamp("1705764600000", EpochUnit::kMicros), kJan20 / 1000);
}

TEST(ParseTimestamp, AllDigitsIsEpochNotIsoBasicFormat) {
  EXPECT_EQ(ParseTimestamp("20240120", std::nullopt), 20240120LL * kSecond);
}

TEST(ParseTimestamp, NeitherFormIsRefused) {
  for (const char* text : {"", "now", "yesterday", "-1705764600", "-1", "2024-13-01", "1705764600s",
                           "2024-01-20T15:30:00ZZ", "12345-01-01"}) {
    EXPECT_EQ(ParseTimestamp(text, std::nullopt), std::nullopt) << text;
  }
}

TEST(BadTimestampError, AlwaysNamesTheAcceptedForms) {
  for (const char* text : {"", "yesterday", "-5", "253402300800", "1705764600123"}) {
    const std::string error = BadTimestampError(text, EpochUnit::kSeconds);
    EXPECT_NE(error.find("ISO 8601 timestamp (2024-01-20T15:30:00Z)"), std::string::npos) << error;
    EXPECT_NE(error.find("epoch seconds, milliseconds, microseconds or nanoseconds"), std::string::npos) << error;
    EXPECT_NE(error.find("precision"), std::string::npos) << error;
  }
  EXPECT_EQ(BadTimestampError("yesterday", std::nullopt), kTimestampForms);
}

TEST(BadTimestampError, SaysWhyAnEpochTimeIsRefused) {
  const std::string negative = BadTimestampError("-1705764600", std::nullopt);
  EXPECT_EQ(negative.rfind("is a negative epoch time", 0), 0u) << negative;
  const std::string late = BadTimestampError("1705764600123", EpochUnit::kSeconds);
  EXPECT_EQ(late.rfind("is after 9999-12-31T23:59:59.999999Z as epoch seconds (from ?precision=)", 0), 0u)
      << late;
  const std::string late_ns = BadTimestampError("999999999999999999999", std::nullopt);
  EXPECT_EQ(late_ns.rfind("is after 9999-12-31T23:59:59.999999Z as epoch nanoseconds (from its magnitude)", 0),
            0u)
      << late_ns;
}

TEST(FormatIso8601, WholeSecondsHaveNoFraction) {
  EXPECT_EQ(FormatIso8601(kJan20), "2024-01-20T15:30:00Z");
  EXPECT_EQ(FormatIso8601(0), "1970-01-01T00:00:00Z");
}

TEST(FormatIso8601, FractionIsSixDigits) {
  EXPECT_EQ(FormatIso8601(kJan20 + 500000), "2024-01-20T15:30:00.500000Z");
  EXPECT_EQ(FormatIso8601(kJan20 + 1), "2024-01-20T15:30:00.000001Z");
}

TEST(FormatIso8601, InstantsBeforeTheEpoch) {
  EXPECT_EQ(FormatIso8601(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatIso8601(-kSecond), "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatIso8601(-kDay), "1969-12-31T00:00:00Z");
}

TEST(FormatIso8601, RoundTripsThroughParse) {
  for (const char* text : {"2024-01-20T15:30:00Z", "2024-02-29T23:59:59.999999Z",
                           "1969-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z",
                           "9999-12-31T23:59:59.000001Z", "2000-03-01T00:00:00.100000Z"}) {
    auto us = ParseIso8601(text);
    ASSERT_TRUE(us.has_value()) << text;
    EXPECT_EQ(FormatIso8601(*us), text);
  }
  // And the other way, across a wide range including negatives.
  for (int64_t us = -5000LL * kDay - 7; us < 20000LL * kDay; us += 37LL * kDay + 3 * kHour + 12345) {
    auto back = ParseIso8601(FormatIso8601(us));
    ASSERT_TRUE(back.has_value()) << FormatIso8601(us);
    EXPECT_EQ(*back, us) << FormatIso8601(us);
  }
}

TEST(ParseDuration, EachUnit) {
  EXPECT_EQ(ParseDuration("30s"), 30 * kSecond);
  EXPECT_EQ(ParseDuration("5m"), 5 * kMinute);
  EXPECT_EQ(ParseDuration("2h"), 2 * kHour);
  EXPECT_EQ(ParseDuration("7d"), 7 * kDay);
  EXPECT_EQ(ParseDuration("1s"), kSecond);
  EXPECT_EQ(ParseDuration("0010m"), 10 * kMinute);
}

TEST(ParseDuration, InvalidTextIsRejected) {
  for (const char* text : {"", "s", "5", "0s", "-5m", "+5m", "1.5h", "5 m", " 5m", "5ms", "5w",
                           "5M", "h5", "abc", "5mm"}) {
    EXPECT_EQ(ParseDuration(text), std::nullopt) << text;
  }
}

TEST(ParseDuration, HugeNumbersAreRejected) {
  EXPECT_EQ(ParseDuration("99999999999999999999999s"), std::nullopt);
  EXPECT_EQ(ParseDuration("3153600001s"), std::nullopt);  // just over a century of seconds
}

TEST(ParseDuration, DurationTooLargeForInt64IsRejectedNotOverflowed) {
  // BUG src/common/time_util.cc:168: the "over a century" cap compares N with the
  // number of seconds in a century whatever the unit, so N up to 3153600000 is
  // accepted for 'h' and 'd' too and `n * unit` (line 171) overflows int64 (signed
  // overflow, UB): "3153600000d" is 2.7e20 us. Same root cause lets "36501d"
  // (over a century) through.
  EXPECT_EQ(ParseDuration("3153600000d"), std::nullopt);  // today: -4230121105643274240
  EXPECT_EQ(ParseDuration("106751992d"), std::nullopt);   // today: negative
  EXPECT_EQ(ParseDuration("3000000000h"), std::nullopt);  // 1.08e19 us
}

TEST(ParseDuration, DurationOverACenturyIsRejectedInEveryUnit) {
  // BUG src/common/time_util.cc:168 (same root cause as above): the century cap is
  // only right for seconds.
  EXPECT_EQ(ParseDuration("36501d"), std::nullopt);
  EXPECT_EQ(ParseDuration("876001h"), std::nullopt);
  EXPECT_EQ(ParseDuration("3000000h"), std::nullopt);
  EXPECT_EQ(ParseDuration("52560001m"), std::nullopt);
}

TEST(FormatBytes, SmallCountsInBytes) {
  EXPECT_EQ(FormatBytes(0), "0B");
  EXPECT_EQ(FormatBytes(1), "1B");
  EXPECT_EQ(FormatBytes(1023), "1023B");
}

TEST(FormatBytes, LargerCountsWithOneDecimal) {
  EXPECT_EQ(FormatBytes(1024), "1.0KB");
  EXPECT_EQ(FormatBytes(1536), "1.5KB");
  EXPECT_EQ(FormatBytes(1024 * 1024), "1.0MB");
  EXPECT_EQ(FormatBytes(1288490189ULL), "1.2GB");
  EXPECT_EQ(FormatBytes(1ULL << 40), "1.0TB");
  EXPECT_EQ(FormatBytes(1ULL << 50), "1.0PB");
}

TEST(FormatBytes, PetabytesIsTheLargestUnit) {
  EXPECT_EQ(FormatBytes(1ULL << 60), "1024.0PB");
}

TEST(FormatBytes, ValueJustBelowTheNextUnitDoesNotPrint1024) {
  // BUG src/common/time_util.cc:200-208 (minor): the unit is chosen before
  // rounding to one decimal, so 1048575 bytes (1023.999 KB) prints "1024.0KB"
  // instead of "1.0MB".
  EXPECT_EQ(FormatBytes(1048575), "1.0MB");
}

TEST(FormatUptime, UnderAnHourShowsMinutesAndSeconds) {
  EXPECT_EQ(FormatUptime(0), "0m 0s");
  EXPECT_EQ(FormatUptime(59), "0m 59s");
  EXPECT_EQ(FormatUptime(61), "1m 1s");
  EXPECT_EQ(FormatUptime(3599), "59m 59s");
}

TEST(FormatUptime, UnderADayShowsHoursAndMinutes) {
  EXPECT_EQ(FormatUptime(3600), "1h 0m");
  EXPECT_EQ(FormatUptime(3600 + 5 * 60 + 9), "1h 5m");
  EXPECT_EQ(FormatUptime(86399), "23h 59m");
}

TEST(FormatUptime, DaysShowDaysHoursMinutes) {
  EXPECT_EQ(FormatUptime(86400), "1d 0h 0m");
  EXPECT_EQ(FormatUptime(2 * 86400 + 15 * 3600 + 30 * 60 + 12), "2d 15h 30m");
}

TEST(NowMicros, IsCurrentWallClock) {
  // After 2024-01-01 and before 2100-01-01.
  EXPECT_GT(NowMicros(), 1704067200LL * kSecond);
  EXPECT_LT(NowMicros(), 4102444800LL * kSecond);
}

}  // namespace
}  // namespace rm
