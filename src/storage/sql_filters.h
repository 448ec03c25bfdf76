// SQL fragments shared by the shard's queries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rm {

// "(series_id BETWEEN 3 AND 9 OR series_id IN (1,12))" for sorted ids: runs of
// consecutive ids become ranges (pruned by DuckDB's row-group min/max), the
// rest one IN list. Only integers we generated reach the SQL text.
std::string SeriesIdFilter(const std::vector<int32_t>& ids);

// The SELECTs of `parts` as one statement ("" for none): one plan for all.
std::string JoinUnionAll(const std::vector<std::string>& parts);

}  // namespace rm
