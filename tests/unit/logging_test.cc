// Tests of src/observability/logging and src/common/request_context: settings
// from LOG_LEVEL / RUST_LOG / LOG_FORMAT, JSON lines carrying the request id.
#include "src/observability/logging.h"

#include "src/common/request_context.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <thread>

namespace rm {
namespace {

TEST(LogSettings, Defaults) {
  auto s = LogSettingsFromEnv(nullptr, nullptr, nullptr);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->level, spdlog::level::info);
  EXPECT_FALSE(s->json);
}

TEST(LogSettings, LevelsAndFormats) {
  EXPECT_EQ(LogSettingsFromEnv("debug", nullptr, nullptr)->level, spdlog::level::debug);
  EXPECT_EQ(LogSettingsFromEnv("WARNING", nullptr, nullptr)->level, spdlog::level::warn);
  EXPECT_TRUE(LogSettingsFromEnv(nullptr, nullptr, "json")->json);
  EXPECT_FALSE(LogSettingsFromEnv(nullptr, nullptr, "text")->json);
  EXPECT_FALSE(LogSettingsFromEnv("loud", nullptr, nullptr).ok());
  EXPECT_FALSE(LogSettingsFromEnv(nullptr, nullptr, "xml").ok());
}

TEST(LogSettings, RustLogFromTheSeeds) {
  EXPECT_EQ(LogSettingsFromEnv(nullptr, "debug", nullptr)->level, spdlog::level::debug);
  EXPECT_EQ(LogSettingsFromEnv(nullptr, "info,raftmetrics=trace", nullptr)->level, spdlog::level::trace);
  EXPECT_EQ(LogSettingsFromEnv(nullptr, "hyper=warn,error", nullptr)->level, spdlog::level::err);
  // LOG_LEVEL wins over RUST_LOG.
  EXPECT_EQ(LogSettingsFromEnv("warn", "debug", nullptr)->level, spdlog::level::warn);
  EXPECT_FALSE(LogSettingsFromEnv(nullptr, "hyper=warn", nullptr).ok());
}

TEST(RequestIdScope, NestsAndRestores) {
  EXPECT_EQ(CurrentRequestId(), "");
  {
    RequestIdScope outer("a");
    EXPECT_EQ(CurrentRequestId(), "a");
    {
      RequestIdScope inner("b");
      EXPECT_EQ(CurrentRequestId(), "b");
    }
    EXPECT_EQ(CurrentRequestId(), "a");
    std::thread([] { EXPECT_EQ(CurrentRequestId(), ""); }).join();  // per thread
  }
  EXPECT_EQ(CurrentRequestId(), "");
}

TEST(RequestId, AcceptsOnlySafeIds) {
  EXPECT_TRUE(IsAcceptableRequestId("abc-123_x.y:z"));
  EXPECT_FALSE(IsAcceptableRequestId(""));
  EXPECT_FALSE(IsAcceptableRequestId("has space"));
  EXPECT_FALSE(IsAcceptableRequestId("new\nline"));
  EXPECT_FALSE(IsAcceptableRequestId(std::string(129, 'a')));
  EXPECT_EQ(NewRequestId().size(), 16u);
  EXPECT_NE(NewRequestId(), NewRequestId());
}

TEST(JsonLogs, EveryLineIsJsonWithTheRequestId) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  SetLogNodeId("worker-7");
  ConfigureLogging({spdlog::level::info, true});
  {
    RequestIdScope scope("req-42");
    spdlog::info("stored \"{}\" points\n", 3);
  }
  spdlog::info("no request");
  spdlog::debug("filtered out");
  spdlog::set_default_logger(previous);
  ConfigureLogging({spdlog::level::info, false});

  std::istringstream lines(out.str());
  std::string line;
  std::vector<nlohmann::json> parsed;
  while (std::getline(lines, line)) parsed.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(parsed.size(), 2u) << out.str();
  EXPECT_EQ(parsed[0]["msg"], "stored \"3\" points\n");
  EXPECT_EQ(parsed[0]["request_id"], "req-42");
  EXPECT_EQ(parsed[0]["level"], "info");
  EXPECT_EQ(parsed[0]["node"], "worker-7");
  EXPECT_TRUE(parsed[0].contains("ts"));
  EXPECT_FALSE(parsed[1].contains("request_id"));
}

TEST(TextLogs, CarryTheRequestId) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  ConfigureLogging({spdlog::level::info, false});
  {
    RequestIdScope scope("req-7");
    spdlog::info("hello");
  }
  spdlog::set_default_logger(previous);
  EXPECT_NE(out.str().find("[rid=req-7] hello"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace rm
