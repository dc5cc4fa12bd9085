"""Prints the pin of the oldest torch that the installed rnnfast's [torch] extra allows.

    python .ci/torch_low_end.py        # e.g. torch==2.13

The extra is a range with a lower bound (torch>=X); CI installs torch==X, so the comparison tests
run at the low end of what users may have.
"""
import importlib.metadata
import re
import sys


def low_end(requirements):
    for requirement in requirements:
        name, _, marker = requirement.partition(";")
        if re.search(r"""extra\s*==\s*["']torch["']""", marker):
            found = re.fullmatch(r"\s*torch\s*(?:\(\s*)?>=\s*([0-9][0-9a-z.]*)\s*(?:,[^;]*)?\)?\s*", name)
            if found:
                return "torch==" + found.group(1)
            raise SystemExit(f"the [torch] extra is not a range with a lower bound: {name.strip()}")
    raise SystemExit("rnnfast has no [torch] extra")


if __name__ == "__main__":
    print(low_end(importlib.metadata.requires("rnnfast") or []))
    sys.exit(0)
