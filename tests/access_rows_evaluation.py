"""Access rows of the evaluation app.

The access users are created after ``make_objects`` runs, so the study here belongs to another reader:
every reader page of it must be refused to ``access_reader`` (a reader cannot see another reader's
items); a reader's own pages are checked in tests/test_study_views.py.
"""

# Spelled out rather than imported from tests.access_table, which imports this module.
A, D = "allow", "deny"
READER_ONLY = {"reader": A, "coordinator": D, "admin": D}
COORD = {"reader": D, "coordinator": A, "admin": A}
NOBODY = {"reader": D, "coordinator": D, "admin": D}
COORD_ONLY_VOLUME = COORD


def make_objects(objects):
    from evaluation.volumes import volume_key
    from tests.factories import make_study, make_user

    other = make_user("other_reader", "reader")
    study = make_study(readers=[other], name="access-study")
    assignment = study.assignments.get()
    item = assignment.items.get(position=1)
    objects.update(study=study, assignment=assignment, item=item, pos1=_Key(1), token=_Key(item.token),
                   left_key=_Key(volume_key(item, "left")))


class _Key:
    """Lets a row pass the item token and a volume key as URL arguments (they are not primary keys)."""

    def __init__(self, value):
        self.pk = value


ROWS = [
    ("evaluation:my_studies", "get", (), READER_ONLY),
    # Another reader's study: no reader page of it is shown to access_reader; coordinators do not vote.
    ("evaluation:study_start", "get", ("study",), NOBODY),
    ("evaluation:reader_item", "get", ("study", "pos1"), NOBODY),
    ("evaluation:reader_item_config", "get", ("study", "pos1"), NOBODY),
    ("evaluation:reader_vote", "post", ("study", "pos1"), NOBODY),
    ("evaluation:reader_done", "get", ("study",), NOBODY),
    ("evaluation:reader_review", "get", ("study",), NOBODY),
    ("evaluation:volume", "get", ("token", "left_key"), COORD_ONLY_VOLUME),
    ("evaluation:study_list", "get", (), COORD),
    ("evaluation:study_create", "get", (), COORD),
    ("evaluation:study_detail", "get", ("study",), COORD),
    ("evaluation:study_status", "post", ("study",), COORD),
    ("evaluation:study_readers", "post", ("study",), COORD),
    ("evaluation:study_reader_remove", "post", ("study", "assignment"), COORD),
    ("evaluation:study_pairs", "post", ("study",), COORD),
    ("evaluation:study_preview", "get", ("study",), COORD),
    ("evaluation:preview_item", "get", ("study", "assignment", "pos1"), COORD),
    ("evaluation:preview_item_config", "get", ("study", "assignment", "pos1"), COORD),
    # An open study shows progress only: its report needs an explicit, recorded "unblind now" (409 before).
    ("evaluation:study_report", "get", ("study",), {"reader": "deny", "coordinator": "conflict", "admin": "conflict"}),
    ("evaluation:study_report_json", "get", ("study",), {"reader": "deny", "coordinator": "conflict", "admin": "conflict"}),
    ("evaluation:study_unblind", "post", ("study",), COORD),
    # The planner's bare request lacks the design, so an allowed user gets a 400 naming the fields.
    ("evaluation:study_plan", "get", (), {"reader": "deny", "coordinator": "bad_input", "admin": "bad_input"}),
    # The votes CSV unblinds, so an open study answers 409 to coordinators too.
    ("evaluation:study_votes_csv", "get", ("study",), {"reader": "deny", "coordinator": "conflict", "admin": "conflict"}),
]
