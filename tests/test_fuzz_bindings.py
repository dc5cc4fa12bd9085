"""A short run of the fuzzer of every rnnfast._C entry point (tests/fuzz_bindings.py): valid
calls (odd layouts, empty batches, integers near the limits) accepted with the results of the
plain call and of the reference, invalid ones refused with a message naming the argument.
CI runs it also under AddressSanitizer and UndefinedBehaviorSanitizer (tests/sanitize.sh).
RNNFAST_FUZZ_CALLS sets the calls per entry point (the scheduled run: 100000)."""
import os

import pytest

import fuzz_bindings

CALLS = int(os.environ.get("RNNFAST_FUZZ_CALLS", "150"))


@pytest.mark.parametrize("entry", sorted(fuzz_bindings.CASES))
def test_fuzz_entry_point(entry):
    counts = fuzz_bindings.fuzz(CALLS, seed=20, only=[entry])[entry]
    assert counts["accepted"] + counts["refused"] == CALLS
    # Both kinds of call are drawn, so the run tests acceptance as well as refusal.
    assert counts["accepted"] >= CALLS // 10, counts
    assert counts["refused"] >= CALLS // 20, counts


def test_the_fuzzer_knows_every_entry_point():
    assert set(fuzz_bindings.entry_points()) == set(fuzz_bindings.CASES)
