"""The allowed/denied matrix of DESIGN.md, one row per URL of the project.

Rows live in ``tests/access_rows_<app>.py`` (one module per app, each defining ``ROWS``) and are collected
here; ``test_every_url_is_in_the_table`` fails when a URL has no row. Arguments name objects made by the
``access_objects`` fixture in tests/test_access.py (extend it there, or add a ``make_objects(db_objects)``
function to your rows module that adds entries to the dict it is given).
"""

import importlib
import pkgutil
from pathlib import Path

A, D = "allow", "deny"
READER_ONLY = {"reader": A, "coordinator": D, "admin": D}
COORD = {"reader": D, "coordinator": A, "admin": A}
ADMIN_ONLY = {"reader": D, "coordinator": D, "admin": A}
ANY_ROLE = {"reader": A, "coordinator": A, "admin": A}

# (url name, method, args (names of fixture objects), expectations per role)
CORE_ROWS = [
    ("home", "get", (), ANY_ROLE),
    ("login", "get", (), ANY_ROLE),
    ("logout", "post", (), ANY_ROLE),
    ("favicon", "get", (), ANY_ROLE),
    ("lockouts", "get", (), COORD),
    ("pipeline:run_list", "get", (), ADMIN_ONLY),
    ("pipeline:device_check_launch", "post", (), ADMIN_ONLY),
    ("pipeline:run_detail", "get", ("run",), ADMIN_ONLY),
    ("pipeline:run_status", "get", ("run",), ADMIN_ONLY),
    ("pipeline:run_cancel", "post", ("run",), ADMIN_ONLY),
    ("pipeline:viewer_demo", "get", (), ANY_ROLE),
    ("pipeline:viewer_demo_volume", "get", (), ANY_ROLE),
]

# Pages anonymous users may see (everything else redirects them to the login page).
PUBLIC = {"login"}
# Public URLs that answer anyone with a redirect elsewhere than the login page.
PUBLIC_REDIRECTS = {"favicon"}
# URLs whose normal answer is a redirect to the login page (so that redirect is not a denial).
LANDS_ON_LOGIN = {"logout"}


def row_modules():
    here = Path(__file__).resolve().parent
    for info in pkgutil.iter_modules([str(here)]):
        if info.name.startswith("access_rows_"):
            yield importlib.import_module(f"tests.{info.name}")


ACCESS = CORE_ROWS + [row for module in row_modules() for row in module.ROWS]
# Token-authenticated API URLs: they answer 401 to any request without a valid token.
SELF_AUTHENTICATED = {name for module in row_modules() for name in getattr(module, "SELF_AUTHENTICATED", ())}
