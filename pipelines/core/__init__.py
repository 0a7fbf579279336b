"""Pure logic: no I/O, no clocks, no environment. Unit-tested without mocks."""
