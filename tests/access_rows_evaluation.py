from tests.access_table import READER_ONLY

ROWS = [
    ("evaluation:my_studies", "get", (), READER_ONLY),
]
