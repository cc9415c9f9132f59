"""symopt's tests, a folder per package (tests/programs tests symopt/programs, ...)."""
