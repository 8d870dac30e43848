"""The hostile-host harness: fake SSH hosts with crafted Docker answers and state files,
driven through the real CLI (see README.md)."""
