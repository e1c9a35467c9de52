"""Subcommands of ``nova-streaming``: each module defines ``add_parser(subparsers)``."""
