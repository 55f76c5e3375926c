// experiments/harness/errors.hpp — the two kinds of user error.
//
// Both end the command with a one-line `lowbit: error: <message>` on stderr
// and exit status 2 (main.cpp). Anything else that escapes a driver is a
// bug in lowbit and exits 1.
#pragma once

#include <stdexcept>

namespace lowbit::harness {

// The command line is wrong: unknown subcommand or option, missing or
// conflicting options, an output path that cannot be written.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The input is wrong: an unreadable or malformed file, text that is not a
// number, an empty input.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace lowbit::harness
