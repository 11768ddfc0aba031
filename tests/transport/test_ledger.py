"""The ZeroMQ learner's ledger: what was offered, delivered and acknowledged per actor."""

import pytest

from serl.transport.learner_ledger import Ledger, Offer


def _items(first: int, n: int) -> list[dict]:
    return [{"step": first + i} for i in range(n)]


@pytest.mark.timeout(5)
def test_acknowledgements_follow_the_transition_source_contract():
    ledger = Ledger()
    assert ledger.hello("a", 0) == -1
    assert ledger.offer("a", 0, _items(0, 3)) is Offer.QUEUED
    assert ledger.offer("a", 1, _items(1, 4)) is Offer.QUEUED  # only sequences 3 and 4 are new
    assert ledger.offer("a", 9, _items(9, 1)) is Offer.GAP
    batches = ledger.take(10, timeout=0)
    assert [(b.first_sequence, b.last_sequence) for b in batches] == [(0, 2), (3, 4)]
    with pytest.raises(ValueError, match="cannot acknowledge 5, only sequences < 5 were delivered"):
        ledger.acknowledge("a", 5)
    with pytest.raises(ValueError, match="unknown actor 'b'"):
        ledger.acknowledge("b", 0)
    assert ledger.acknowledge("a", 2) and ledger.acked("a") == 2
    assert not ledger.acknowledge("a", 1) and ledger.acked("a") == 2  # lowering is a no-op
    assert ledger.offer("a", 0, _items(0, 2)) is Offer.DUPLICATE
