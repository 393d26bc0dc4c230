"""URL converters. ``<id:pk>`` is ``<int:pk>`` bounded to what every database's BIGINT holds.

Django's own ``int`` converter matches any run of digits, so ``/studies/100000000000000000000/`` reached
the database and SQLite raised OverflowError (a 500). At most 18 digits stays below 2**63 - 1; longer
numbers do not match and the URL is a plain 404.
"""


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(int(value))
