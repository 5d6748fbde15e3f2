"""Subcommands beyond `models`; filled in as the harness grows."""


def add_subcommands(sub) -> None:
    return None
