"""The allowed/denied matrix of DESIGN.md, one row per URL of the project.

Every issue that adds a URL adds its row here; ``test_every_url_is_in_the_table`` fails otherwise.
Arguments are names of objects made by the ``access_objects`` fixture.
"""

A, D = "allow", "deny"
READER_ONLY = {"reader": A, "coordinator": D, "admin": D}
COORD = {"reader": D, "coordinator": A, "admin": A}
ADMIN_ONLY = {"reader": D, "coordinator": D, "admin": A}
ANY_ROLE = {"reader": A, "coordinator": A, "admin": A}

# (url name, method, args (names of fixture objects), expectations per role)
ACCESS = [
    ("home", "get", (), ANY_ROLE),
    ("login", "get", (), ANY_ROLE),
    ("logout", "post", (), ANY_ROLE),
    ("evaluation:my_studies", "get", (), READER_ONLY),
    ("pipeline:dataset_list", "get", (), COORD),
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
# URLs whose normal answer is a redirect to the login page (so that redirect is not a denial).
LANDS_ON_LOGIN = {"logout"}
