"""`semguard translate` (being written)."""


def register(subparsers) -> None:
    subparsers.add_parser("translate", help="translate a whole data set, labels and boxes carried through")
