// Stable 64-bit hashing for partitioning. xxHash3 gives the same value on every
// build and machine (std::hash does not), so a key always maps to the same shard.
#pragma once

#include <cstdint>
#include <string_view>

namespace rm {

uint64_t StableHash(std::string_view bytes);

}  // namespace rm
