"""The operators' commands: `reingest <command>`."""
