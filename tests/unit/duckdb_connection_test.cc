// Tests of the DuckDB wrapper's statement cache (src/storage/duckdb.h):
// QueryCached keeps at most max_cached() statements, drops the least recently
// used, and a cached statement reads the data as it is when it runs.
#include "src/storage/duckdb.h"

#include <gtest/gtest.h>

#include <string>

namespace rm::db {
namespace {

std::unique_ptr<Connection> InMemory() {
  auto db = Database::Open(":memory:", {});
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  auto conn = (*db)->Connect();
  EXPECT_TRUE(conn.ok()) << conn.status().ToString();
  return std::move(*conn);
}

TEST(DuckdbConnection, CachedStatementsSeeNewDataAndStayBounded) {
  auto c = InMemory();
  ASSERT_TRUE(c->Execute("CREATE TABLE t(x BIGINT)").ok());
  const std::string sum = "SELECT coalesce(sum(x), 0)::BIGINT FROM t WHERE x >= ?";
  auto r = c->QueryCached(sum, {Param::Int(0)});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->Int(0, 0), 0);
  ASSERT_TRUE(c->Execute("INSERT INTO t VALUES (1), (2), (40)").ok());
  r = c->QueryCached(sum, {Param::Int(2)});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Int(0, 0), 42);

  // Many distinct texts: the cache stays bounded, and `sum`, used between
  // them, keeps answering.
  const size_t n = 3 * Connection::max_cached();
  for (size_t i = 0; i < n; ++i) {
    auto each = c->QueryCached("SELECT count(*) + " + std::to_string(i) + " FROM t");
    ASSERT_TRUE(each.ok()) << each.status().ToString();
    EXPECT_EQ(each->Int(0, 0), static_cast<int64_t>(3 + i));
    EXPECT_LE(c->cached_statements(), Connection::max_cached());
    ASSERT_TRUE(c->QueryCached(sum, {Param::Int(0)}).ok());
  }
  EXPECT_EQ(c->cached_statements(), Connection::max_cached());
  // A statement dropped long ago is prepared again and still right.
  r = c->QueryCached("SELECT count(*) + 0 FROM t");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Int(0, 0), 3);
}

}  // namespace
}  // namespace rm::db
