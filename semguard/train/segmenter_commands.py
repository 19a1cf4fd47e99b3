"""`semguard segmenter ...` (being written)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("segmenter", help="train the guide (source labels) or the judge (target labels)")
    parser.set_defaults(group_parser=parser)
