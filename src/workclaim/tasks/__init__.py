"""Tasks: functions turned into queue items (see docs/tasks.md)."""
