"""The CLI's commands, grouped by area; each module is a thin layer over the library."""
