"""Tasks and watches (web monitor, threshold watch, reminders): configs and input rules, the
task service and reads, the pure check rules and poll messages, the poll storage."""
