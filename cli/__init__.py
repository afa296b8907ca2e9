"""The `catalog` command line: parses arguments, calls one `catalog` function, prints the result."""
