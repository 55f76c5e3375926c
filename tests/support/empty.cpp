// keeps lowbit_test_support non-empty
