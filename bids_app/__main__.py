"""``python -m bids_app`` runs the brainenc command line."""

from .cli import entrypoint

if __name__ == "__main__":
    entrypoint()
