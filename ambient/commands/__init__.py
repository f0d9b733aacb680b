"""CLI sub-commands by area; each module exposes a Typer `app` that ambient/cli.py adds."""
