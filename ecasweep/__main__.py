"""``python -m ecasweep`` and the ``ecasweep`` command run the command-line interface."""

import sys


def main() -> None:
    """Console entry point: SIGTERM handled like Ctrl-C from the first moment, and an interruption
    during start-up (importing torch takes seconds) exits quietly with 130 or 143."""
    from .sweep import signals

    signals.install()
    try:
        from .cli.app import main as cli_main

        cli_main()
    except KeyboardInterrupt as exc:
        sys.exit(signals.exit_code(exc))


if __name__ == "__main__":
    main()
