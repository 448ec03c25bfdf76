// Tests of src/storage/command_log: appends survive a reopen, a torn last
// Append is cut off, damage before a later Append refuses the log, and Clear
// empties the log.
#include "src/storage/command_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace rm {
namespace {

namespace fs = std::filesystem;

class CommandLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rm_command_log_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "shard-1.duckdb.wlog").string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::unique_ptr<CommandLog> MustOpen(std::vector<CommandLog::Record>* records) {
    auto log = CommandLog::Open(path_, records);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(*log) : nullptr;
  }
  static std::vector<std::pair<uint64_t, std::string>> Flat(const std::vector<CommandLog::Record>& records) {
    std::vector<std::pair<uint64_t, std::string>> out;
    for (const auto& r : records) out.emplace_back(r.index, r.payload);
    return out;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(CommandLogTest, RecordsSurviveAReopen) {
  std::vector<CommandLog::Record> records;
  auto log = MustOpen(&records);
  ASSERT_TRUE(log);
  EXPECT_TRUE(records.empty());
  const std::string big(100000, 'x');
  ASSERT_TRUE(log->Append({{1, "one"}, {2, ""}}).ok());
  ASSERT_TRUE(log->Append({{3, big}}).ok());
  EXPECT_EQ(log->bytes(), fs::file_size(path_));
  log.reset();
  auto read = CommandLog::ReadAll(path_);
  ASSERT_TRUE(read.ok());
  using V = std::vector<std::pair<uint64_t, std::string>>;
  EXPECT_EQ(Flat(*read), (V{{1, "one"}, {2, ""}, {3, big}}));
  log = MustOpen(&records);
  ASSERT_TRUE(log);
  EXPECT_EQ(Flat(records), (V{{1, "one"}, {2, ""}, {3, big}}));
  // Appends go after what was there.
  ASSERT_TRUE(log->Append({{4, "four"}}).ok());
  log.reset();
  EXPECT_EQ(Flat(*CommandLog::ReadAll(path_)), (V{{1, "one"}, {2, ""}, {3, big}, {4, "four"}}));
}

TEST_F(CommandLogTest, ATornTailIsCutOffAtOpen) {
  std::vector<CommandLog::Record> records;
  auto log = MustOpen(&records);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->Append({{1, "one"}, {2, "two"}}).ok());
  const auto whole = log->bytes();
  log.reset();
  {  // a crash mid-append: a header whose payload never arrived
    std::ofstream out(path_, std::ios::binary | std::ios::app);
    out << std::string("\x10\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x01\x02", 14);
  }
  log = MustOpen(&records);
  ASSERT_TRUE(log);
  EXPECT_EQ(records.size(), 2u);
  EXPECT_EQ(fs::file_size(path_), whole);
  ASSERT_TRUE(log->Append({{3, "three"}}).ok());
  log.reset();
  auto read = CommandLog::ReadAll(path_);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 3u);
  EXPECT_EQ((*read)[2].payload, "three");
}

TEST_F(CommandLogTest, ACorruptRecordEndsTheLog) {
  std::vector<CommandLog::Record> records;
  auto log = MustOpen(&records);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->Append({{1, "aaaa"}, {2, "bbbb"}, {3, "cccc"}}).ok());
  log.reset();
  {  // flip one payload byte of the second record
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(20 + 4 + 20 + 1);
    f.put('X');
  }
  auto read = CommandLog::ReadAll(path_);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ((*read)[0].payload, "aaaa");
}

TEST_F(CommandLogTest, DamageBeforeALaterAppendRefusesTheLogInsteadOfCuttingIt) {
  std::vector<CommandLog::Record> records;
  auto log = MustOpen(&records);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->Append({{1, "aaaa"}, {2, "bbbb"}}).ok());
  ASSERT_TRUE(log->Append({{3, "cccc"}}).ok());  // synced after the first Append was
  log.reset();
  const auto size = fs::file_size(path_);
  {  // flip one payload byte of the second record: acknowledged data is damaged
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(20 + 4 + 20 + 1);
    f.put('X');
  }
  auto read = CommandLog::ReadAll(path_);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), Code::kStorage);
  EXPECT_NE(read.status().ToString().find("damaged at byte 24"), std::string::npos) << read.status().ToString();
  auto opened = CommandLog::Open(path_, &records);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(fs::file_size(path_), size);  // nothing cut off
}

TEST_F(CommandLogTest, ALogOfOneTornAppendKeepsTheRecordsBeforeTheDamage) {
  std::vector<CommandLog::Record> records;
  auto log = MustOpen(&records);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->Append({{1, "aaaa"}}).ok());
  ASSERT_TRUE(log->Append({{2, "bbbb"}, {3, "cccc"}, {4, "dddd"}}).ok());
  log.reset();
  {  // the last Append, torn: its middle record never reached the disk
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(2 * 24 + 20);
    f.put('X');
  }
  log = MustOpen(&records);
  ASSERT_TRUE(log);
  using V = std::vector<std::pair<uint64_t, std::string>>;
  EXPECT_EQ(Flat(records), (V{{1, "aaaa"}, {2, "bbbb"}}));
  EXPECT_EQ(fs::file_size(path_), 2u * 24);
}

TEST_F(CommandLogTest, ClearEmptiesTheLog) {
  std::vector<CommandLog::Record> records;
  auto log = MustOpen(&records);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->Append({{1, "one"}}).ok());
  ASSERT_TRUE(log->Clear().ok());
  EXPECT_EQ(log->bytes(), 0u);
  EXPECT_EQ(fs::file_size(path_), 0u);
  ASSERT_TRUE(log->Append({{2, "two"}}).ok());
  log.reset();
  auto read = CommandLog::ReadAll(path_);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ((*read)[0].index, 2u);
}

TEST_F(CommandLogTest, RewriteKeepsOnlyTheGivenRecords) {
  std::vector<CommandLog::Record> records;
  auto log = MustOpen(&records);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->Append({{1, "one"}, {2, "two"}, {3, "three"}}).ok());
  ASSERT_TRUE(log->Rewrite({{3, "three"}}).ok());
  EXPECT_EQ(log->bytes(), fs::file_size(path_));
  EXPECT_FALSE(fs::exists(path_ + ".new"));
  ASSERT_TRUE(log->Append({{4, "four"}}).ok());  // appends follow the rewritten records
  log.reset();
  using V = std::vector<std::pair<uint64_t, std::string>>;
  EXPECT_EQ(Flat(*CommandLog::ReadAll(path_)), (V{{3, "three"}, {4, "four"}}));
  log = MustOpen(&records);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->Rewrite({}).ok());  // nothing left: an empty log
  EXPECT_EQ(fs::file_size(path_), 0u);
}

TEST_F(CommandLogTest, AMissingFileHasNoRecordsAndAnUnwritableOneIsAStorageError) {
  auto read = CommandLog::ReadAll((dir_ / "none.wlog").string());
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(read->empty());
  std::vector<CommandLog::Record> records;
  auto log = CommandLog::Open((dir_ / "missing-dir" / "x.wlog").string(), &records);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), Code::kStorage);
}

}  // namespace
}  // namespace rm
