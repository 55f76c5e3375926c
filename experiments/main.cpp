// The `lowbit` command. Subcommands live in experiments/drivers/*.cpp and
// register themselves (harness/cli.hpp); this file only dispatches.
#include "experiments/harness/cli.hpp"

int main(int argc, char** argv) { return lowbit::harness::run_main(argc, argv); }
