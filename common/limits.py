"""How large a request's values may be: one place for the REST models (common.fields) and for tables
imported from files, so that an oversized value is refused naming the field, never a server error from the
database driver or an event too large for the broker."""

CODE_LENGTH = 64  # identifiers: credit codes, resource codes, logins, client ids, event types
NAME_LENGTH = 200  # names and titles
TEXT_LENGTH = 4000  # abstracts, descriptions, conditions, reasons, findings
SECRET_LENGTH = 256  # passwords, client secrets, refresh tokens: hashing a longer one only costs time
MAX_INT64 = 2**63 - 1  # the database's largest integer: sequence numbers, revisions, versions
MAX_AVRO_INT = 2**31 - 1  # numbers that travel in events as Avro `int`
MAX_ITEMS = 1000  # elements of a list in one request
