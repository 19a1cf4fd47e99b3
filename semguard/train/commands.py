"""`semguard train` (being written)."""


def register(subparsers) -> None:
    subparsers.add_parser("train", help="train a translator (semguard or a baseline) from a YAML config")
