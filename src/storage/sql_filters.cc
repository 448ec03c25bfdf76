#include "src/storage/sql_filters.h"

namespace rm {

std::string SeriesIdFilter(const std::vector<int32_t>& ids) {
  std::string singles, ranges;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (j == i) {
      singles += (singles.empty() ? "" : ",") + std::to_string(ids[i]);
    } else {
      ranges += (ranges.empty() ? "" : " OR ") +
                ("series_id BETWEEN " + std::to_string(ids[i]) + " AND " + std::to_string(ids[j]));
    }
    i = j + 1;
  }
  if (!singles.empty()) ranges += (ranges.empty() ? "" : " OR ") + ("series_id IN (" + singles + ")");
  return "(" + ranges + ")";
}

std::string JoinUnionAll(const std::vector<std::string>& parts) {
  std::string sql;
  for (const auto& part : parts) sql += (sql.empty() ? "" : " UNION ALL ") + part;
  return sql;
}

}  // namespace rm
