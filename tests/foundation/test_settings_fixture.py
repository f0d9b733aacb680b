"""The `settings` fixture: built once a process, each test's own copy (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from ambient.settings import Settings


def test_each_test_gets_its_own_settings_in_its_own_folder(
    settings: Settings, process_settings: Settings, tmp_path: Path
) -> None:
    assert settings.data_dir == tmp_path and settings.log_dir == tmp_path
    assert (tmp_path / "ambient.db").is_file()
    assert settings.resolved_database_url.endswith(f"{tmp_path.resolve()}/ambient.db")
    # Everything else as the process's build; lists and models are the test's own to change.
    same = settings.model_dump(exclude={"data_dir", "log_dir"})
    assert same == process_settings.model_dump(exclude={"data_dir", "log_dir"})
    assert settings.remediation_approvers is not process_settings.remediation_approvers
    settings.remediation_approvers["c-1"] = ["someone"]
    assert "c-1" not in process_settings.remediation_approvers
