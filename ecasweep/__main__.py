"""``python -m ecasweep`` runs the command-line interface."""

import sys

if __name__ == "__main__":
    try:
        from .cli import main  # importing torch takes seconds: a Ctrl-C may land here too

        main()
    except KeyboardInterrupt:
        sys.exit(130)
