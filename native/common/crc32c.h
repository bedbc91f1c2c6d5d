#pragma once
#include <cstddef>
#include <cstdint>

namespace decree {
// CRC-32C (Castagnoli), the same function as @node-rs/crc32's crc32c: crc32c(crc32c(0, a), b) == crc32c(0, a ++ b).
uint32_t crc32c(uint32_t crc, const uint8_t* data, size_t len);
}  // namespace decree
