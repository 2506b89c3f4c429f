"""``priorlib models``: list the registry."""


def add_arguments(p) -> None:
    pass


def run(a) -> int:
    from .models import MODELS
    for spec in MODELS.values():
        print(f"{spec.name:20s} {spec.description}")
    return 0
