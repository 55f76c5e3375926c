// experiments/harness/text_table.hpp — a results Table as aligned text.
//
// Numbers are printed exactly as the shortest decimal that reads back as the
// same double (448, 0.001953125, 5.960464477539063e-08); text is
// left-aligned, numbers right-aligned; booleans read yes / no.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "experiments/harness/results.hpp"

namespace lowbit::harness {

void print_table(std::ostream& os, const Table& table);

// A code in hex with one digit per 4 bits: 0x7e (8 bits), 0xf (4 bits).
std::string hex_code(std::uint32_t code, int bits);

// Shortest round-trip decimal of a double ("nan", "inf", "-0" included).
std::string shortest(double v);

}  // namespace lowbit::harness
