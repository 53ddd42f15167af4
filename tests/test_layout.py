"""The house's rules that code can check: a pure domain core, backends imported when chosen."""

import subprocess
import sys

from tests.service import PROJECT

SDKS = ("vonage", "vonage_sms", "vonage_http_client", "requests", "pydantic", "flask", "sqlalchemy")


def modules_after(code: str) -> set[str]:
    """Return the modules a fresh interpreter holds after running `code` in the project."""
    found = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(found.stdout.split())


def test_the_domain_core_imports_no_sdk_no_web_framework_and_no_database():
    loaded = modules_after("import sms_proxy")
    assert [name for name in SDKS if name in loaded] == []


def test_the_memory_store_and_the_dry_run_import_no_database_and_no_sdk():
    loaded = modules_after("from app import create_app; create_app({'LOG_LEVEL': 'ERROR'})")
    assert [m for m in loaded if m.startswith(("sqlalchemy", "psycopg", "vonage"))] == []
    assert "private_sms.stores.sql" not in loaded
