"""``python -m rnnconf`` — the same as the ``rnnconf`` console script."""
from .cli import console_main

if __name__ == "__main__":
    console_main()
