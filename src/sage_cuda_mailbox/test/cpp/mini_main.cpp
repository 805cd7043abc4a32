// main() of the built-in harness (used only when GoogleTest is not installed).
#define SAGE_MINI_GTEST_MAIN 1
#include "gtest_compat.hpp"
