"""`semguard eval` (being written)."""


def register(subparsers) -> None:
    subparsers.add_parser("eval", help="FID, KID, flip rates, box preservation; --flip-report writes report files")
