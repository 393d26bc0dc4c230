from tests.access_table import COORD

ROWS = [
    ("pipeline:dataset_list", "get", (), COORD),
]
