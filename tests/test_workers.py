"""tool/core/workers.py: the --workers pool keeps the input order and pulls items lazily."""
from tool.core import workers


def test_map_with_workers_preserves_order_inline_and_pooled():
    items = [-3, 5, -1, 4, -9, 2, -6]
    expected = [3, 5, 1, 4, 9, 2, 6]
    assert list(workers.map_with_workers(abs, items, workers=1)) == expected
    # a builtin keeps the worker start-up cheap: the children need not import this module
    assert list(workers.map_with_workers(abs, items, workers=2)) == expected


def test_map_with_workers_pulls_items_lazily():
    """The pool takes a few items per worker ahead of the results, not the whole iterator."""
    pulled = []

    def items():
        for i in range(100):
            pulled.append(i)
            yield -i

    results = workers.map_with_workers(abs, items(), workers=2)
    assert next(results) == 0
    assert len(pulled) == 2 * workers.ITEMS_IN_FLIGHT_PER_WORKER
    assert list(results) == list(range(1, 100))
    assert len(pulled) == 100
