#include "experiments/harness/text_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace lowbit::harness {

std::string shortest(double v) {
  if (std::isnan(v)) return std::signbit(v) ? "-nan" : "nan";
  return fmt::format("{}", v);
}

std::string hex_code(std::uint32_t code, int bits) { return fmt::format("0x{:0{}x}", code, (bits + 3) / 4); }

void print_table(std::ostream& os, const Table& table) {
  const auto& cols = table.columns();
  std::vector<std::vector<std::string>> cells(cols.size());
  std::vector<std::size_t> width(cols.size());
  for (std::size_t i = 0; i < cols.size(); ++i) {
    const auto& c = cols[i];
    width[i] = c.name.size();
    for (std::size_t r = 0; r < table.rows(); ++r) {
      std::string s;
      switch (c.type) {
        case ColumnType::string: s = c.strings[r]; break;
        case ColumnType::int64: s = std::to_string(c.int64s[r]); break;
        case ColumnType::uint64: s = std::to_string(c.uint64s[r]); break;
        case ColumnType::float64: s = shortest(c.float64s[r]); break;
        case ColumnType::boolean: s = c.bools[r] ? "yes" : "no"; break;
      }
      width[i] = std::max(width[i], s.size());
      cells[i].push_back(std::move(s));
    }
  }
  auto emit = [&](std::size_t i, const std::string& s, bool last) {
    const std::string pad(width[i] - s.size(), ' ');
    if (cols[i].type == ColumnType::string) os << s << (last ? "" : pad);
    else os << pad << s;
    if (!last) os << "  ";
  };
  for (std::size_t i = 0; i < cols.size(); ++i) emit(i, cols[i].name, i + 1 == cols.size());
  os << "\n";
  for (std::size_t r = 0; r < table.rows(); ++r) {
    for (std::size_t i = 0; i < cols.size(); ++i) emit(i, cells[i][r], i + 1 == cols.size());
    os << "\n";
  }
}

}  // namespace lowbit::harness
