"""The Redis backend: one Lua script per operation on a single primary, keys under one prefix."""
