// Small RAII wrappers over DuckDB's C API. This is the only place in the project
// that includes duckdb.h, and the only place that checks its error codes: every
// failure becomes a Status with Code::kStorage.
//
// Thread safety: a Database may be shared; a Connection, a Prepared statement and
// an Appender must be used by one thread at a time.
#pragma once

#include "src/common/status.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

struct _duckdb_database;
struct _duckdb_connection;
struct _duckdb_prepared_statement;

namespace rm::db {

class Connection;

// Options passed to duckdb_open_ext as config strings ("threads" -> "2", ...).
using Config = std::map<std::string, std::string>;

class Database {
 public:
  static Result<std::shared_ptr<Database>> Open(const std::string& path, const Config& config);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Result<std::unique_ptr<Connection>> Connect();

 private:
  explicit Database(_duckdb_database* db) : db_(db) {}
  _duckdb_database* db_;
};

// A fully materialised query result (for small results only).
class Rows {
 public:
  size_t size() const { return rows_; }
  size_t columns() const { return columns_; }
  bool IsNull(size_t col, size_t row) const { return cells_[row * columns_ + col].null; }
  int64_t Int(size_t col, size_t row) const { return cells_[row * columns_ + col].i; }
  double Double(size_t col, size_t row) const { return cells_[row * columns_ + col].d; }
  const std::string& Text(size_t col, size_t row) const { return cells_[row * columns_ + col].s; }

 private:
  friend class Connection;
  struct Cell {
    bool null = true;
    int64_t i = 0;
    double d = 0;
    std::string s;
  };
  size_t rows_ = 0, columns_ = 0;
  std::vector<Cell> cells_;
};

// A bound parameter for Connection::Query.
struct Param {
  enum Kind { kInt, kDouble, kText, kNull, kIntList } kind;
  int64_t i = 0;
  double d = 0;
  std::string s;
  std::vector<int32_t> list;  // kIntList: bound as INTEGER[]
  static Param Int(int64_t v) { return {kInt, v, 0, {}, {}}; }
  static Param Double(double v) { return {kDouble, 0, v, {}, {}}; }
  static Param Text(std::string v) { return {kText, 0, 0, std::move(v), {}}; }
  static Param IntList(std::vector<int32_t> v) { return {kIntList, 0, 0, {}, std::move(v)}; }
};

// A column-major batch for Connection::AppendColumns: one typed vector per
// column (INTEGER, BIGINT or DOUBLE), in the table's column order, all of one length.
struct ColumnBatch {
  using Column = std::variant<std::vector<int32_t>, std::vector<int64_t>, std::vector<double>>;
  std::vector<Column> columns;

  template <class T>
  std::vector<T>& col(size_t i) { return std::get<std::vector<T>>(columns[i]); }
  template <class T>
  const std::vector<T>& col(size_t i) const { return std::get<std::vector<T>>(columns[i]); }
  size_t rows() const;
};

// Column types a Scan can hand over as raw arrays.
enum class ColumnType { kInteger, kBigint, kDouble };

// One chunk of a Scan: `rows` values per column, as raw arrays of the column's
// type (int32_t, int64_t or double), valid only during the callback.
struct Chunk {
  size_t rows = 0;
  std::vector<const void*> columns;
  template <class T>
  const T* col(size_t i) const { return static_cast<const T*>(columns[i]); }
};

class Connection {
 public:
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  struct ColumnSource;  // AppendColumns' table function state (duckdb.cc)

  Status Execute(const std::string& sql);
  // Runs `sql` with `?` parameters bound in order; materialises every row.
  Result<Rows> Query(const std::string& sql, const std::vector<Param>& params = {});
  // Same, keeping the prepared statement for the next call with the same text:
  // for the few statements every write runs (parsing and planning them again
  // cost as much as appending a few thousand points), and for reads asked again
  // and again (a dashboard's refresh: planning was most of a small query).
  Result<Rows> QueryCached(const std::string& sql, const std::vector<Param>& params = {});
  // Statements QueryCached keeps now (at most max_cached()).
  size_t cached_statements() const { return cache_.size(); }
  static constexpr size_t max_cached() { return kMaxCached; }
  // Streams the result of `sql` chunk by chunk (about 2,048 rows each) to `fn`
  // without copying it into Rows: for results too large to materialise. The
  // result's columns must have exactly `types`, and hold no NULL.
  Status Scan(const std::string& sql, const std::vector<Param>& params, const std::vector<ColumnType>& types,
              const std::function<void(const Chunk&)>& fn);
  // Appends the batch's rows to `table` (the fast path for points and rollups) with
  // a cached `INSERT INTO table SELECT * FROM <this connection's column source>`.
  // Joins the current transaction.
  Status AppendColumns(const std::string& table, const ColumnBatch& batch);
  // Appends text/int rows to a small table, row by row.
  Status AppendRows(const std::string& table, const std::vector<std::vector<Param>>& rows);

 private:
  friend class Database;
  Connection(_duckdb_connection* conn, std::shared_ptr<ColumnSource> source);
  Result<Rows> Run(_duckdb_prepared_statement* stmt, const std::vector<Param>& params,
                   const char* operation = "query");
  Result<_duckdb_prepared_statement*> Prepare(const std::string& sql);
  // Prepare, keeping the statement for the next call with the same text.
  Result<_duckdb_prepared_statement*> Cached(const std::string& sql);
  _duckdb_connection* conn_;
  // At most kMaxCached statements, the least recently used dropped first: a
  // reader sees as many texts as its clients ask different questions.
  static constexpr size_t kMaxCached = 64;
  struct CachedStatement {
    _duckdb_prepared_statement* stmt;
    uint64_t last_used;
  };
  std::map<std::string, CachedStatement> cache_;
  uint64_t cache_clock_ = 0;
  // The batch AppendColumns hands to its registered table function (shared with
  // DuckDB, which keeps the function until the database closes).
  std::shared_ptr<ColumnSource> source_;
};

// "v1.4.4"
std::string LibraryVersion();

}  // namespace rm::db
