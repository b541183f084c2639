"""The `cim` command line: every command calls the same Python functions the API calls."""
