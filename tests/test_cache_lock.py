"""The embedded file cache's add() is a lock across processes: of many processes adding one key at
once, exactly one wins (the report relies on it to queue the slow mixed model once)."""

import multiprocessing as mp

from labelgen_web.cache import LockedFileBasedCache

KEYS = 40
PROCESSES = 6


def _race(location, barrier, queue):
    cache = LockedFileBasedCache(location, {})
    wins = []
    for k in range(KEYS):
        barrier.wait()
        if cache.add(f"lock-{k}", 1, timeout=60):
            wins.append(k)
    queue.put(wins)


def test_exactly_one_process_wins_each_add(tmp_path):
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), barrier, queue)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    wins = [k for _ in procs for k in queue.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
    assert sorted(wins) == list(range(KEYS))


def test_add_still_respects_an_existing_key(tmp_path):
    cache = LockedFileBasedCache(str(tmp_path), {})
    assert cache.add("k", 1) and not cache.add("k", 2) and cache.get("k") == 1
