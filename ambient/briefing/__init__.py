"""The daily briefing: its models and day plan (pure), the log reduction, draft, writer, service."""
