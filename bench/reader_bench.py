"""Reader-study benchmark against gunicorn + PostgreSQL (prints JSON).

1. Viewer: for one item at 256x256x32 and 512x512x32, headless Chromium (Debian's, SwiftShader WebGL) on
   localhost: bytes of volumes transferred and milliseconds from navigation start until both viewers have
   drawn; first visit (the server just started, the browser's first page), a second visit in a new browser
   context, and moving on to the next item inside the page (volumes prefetched and decoded while the first is
   shown). The study's volumes are converted at setup, as the worker does when a study opens.
2. Votes: N concurrent readers (threads) log in through the login form, warm every worker, then post their
   answers, every tenth one twice (a double submit): votes per second, p50/p99 latency, the server's CPU
   milliseconds per request (gunicorn's processes, from /proc) and a check afterwards that every answered item
   has exactly one vote with the answer sent. Sessions and cache on Redis, as in production.

Run: .venv/bin/python bench/reader_bench.py [--pg-url postgres://postgres@127.0.0.1:5432/labelgen_reader_bench]
     [--readers 50 --cases 40 --workers 4 --threads 1 --sizes 256,512 --depth 32 --skip-browser --skip-votes]
     [--cache-url redis://127.0.0.1:6379/7]
The database named in --pg-url is dropped and created again.
"""

import argparse
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_database(url):
    import psycopg

    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.path[1:]}"')
        conn.execute(f'CREATE DATABASE "{parsed.path[1:]}"')


def environment(args, tmp):
    return {**os.environ, "DATABASE_URL": args.pg_url, "LABELGEN_VAR_DIR": str(tmp / "var"),
            "MEDIA_ROOT": str(tmp / "media"), "STATIC_ROOT": str(tmp / "static"), "SECRET_KEY": secrets.token_hex(32),
            "LABELGEN_HTTPS": "0", "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "labelgen_web.settings", "OMP_NUM_THREADS": "1",
            "CACHE_URL": args.cache_url, "LABELGEN_LOGIN_FAILURES": "1000"}


def mri_like(shape, rng, center):
    """Float32 (X, Y, Z): smooth anatomy-like gradient + a bright lesion + Rician-ish noise."""
    grid = np.indices(shape, dtype=np.float32)
    body = 300 + 200 * np.cos(grid[0] / shape[0] * 3) * np.sin(grid[1] / shape[1] * 3)
    d2 = sum(((g - c) / (0.12 * n)) ** 2 for g, c, n in zip(grid, center, shape, strict=True))
    body += 600 * (d2 <= 1)
    return (body + rng.normal(0, 25, shape)).astype(np.float32)


def blob(shape, center, scale):
    grid = np.indices(shape, dtype=np.float32)
    d2 = sum(((g - c) / (scale * n)) ** 2 for g, c, n in zip(grid, center, shape, strict=True))
    return (d2 <= 1).astype(np.uint8)


def make_dataset(name, shape, n_cases, rng):
    from pipeline.datasets.storage import store_volume
    from pipeline.models import Case, Dataset, Image, Label, PredictionSet

    affine = np.diag([0.5 * 256 / shape[0], 0.5 * 256 / shape[1], 4.0, 1.0])
    dataset = Dataset.objects.create(name=name)
    sets = [PredictionSet.objects.create(dataset=dataset, name=n) for n in ("unet-expert", "unet-ai")]
    for i in range(n_cases):
        case = Case.objects.create(dataset=dataset, external_id=f"c{i:03d}", split="TEST")
        center = [n / 2 + rng.integers(-n // 8, n // 8 + 1) for n in shape]
        for modality in ("t1fsce", "t2"):
            data = mri_like(shape, rng, center)
            rel, _ = store_volume(data, affine)
            Image.objects.create(case=case, modality=modality, file=rel, sha256=rel.split("/")[-1][:64],
                                 shape=list(shape), spacing=list(np.diag(affine)[:3]), affine=affine.tolist(),
                                 dtype="float32", intensity_min=float(data.min()), intensity_max=float(data.max()))
        for k, pset in enumerate(sets):
            mask = blob(shape, center, 0.10 + 0.03 * k)
            rel, _ = store_volume(mask, affine)
            Label.objects.create(case=case, source="prediction", prediction_set=pset, file=rel,
                                 sha256=rel.split("/")[-1][:64], shape=list(shape), spacing=list(np.diag(affine)[:3]),
                                 affine=affine.tolist(), voxel_count=int(mask.sum()), volume_ml=0.0)
    return dataset


def session_for(user):
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    s = SessionStore()
    s[SESSION_KEY], s[BACKEND_SESSION_KEY] = str(user.pk), "accounts.backends.RoleBackend"
    s[HASH_SESSION_KEY] = user.get_session_auth_hash()
    s.create()
    return s.session_key


def setup_data(args):
    """Studies for the viewer runs (two readers per size) and for the vote run; returns what clients need."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.contrib.auth.models import Group, User
    from django.db import connections

    from evaluation.services import create_study
    from evaluation.volumes import prepare_study_volumes

    rng = np.random.default_rng(0)
    readers_group = Group.objects.get_or_create(name="Readers")[0]

    passwords = {}

    def reader(name):
        passwords[name] = secrets.token_hex(8)
        u = User.objects.create_user(name, password=passwords[name])
        u.groups.add(readers_group)
        return u

    out = {"viewer": {}, "votes": []}
    for size in args.sizes:
        ds = make_dataset(f"v{size}", (size, size, args.depth), 3, rng)
        users = [reader(f"view{size}a"), reader(f"view{size}b")]
        study = create_study(dataset=ds, prediction_sets=list(ds.prediction_sets.all()), title=f"{size}",
                             readers=users, open_now=True, seed=1)
        prepare_study_volumes(study)  # what the worker's task does when a study opens
        out["viewer"][size] = {"study": study.pk, "sessions": [session_for(u) for u in users]}
    if not args.skip_votes:
        ds = make_dataset("votes", (32, 32, 8), args.cases, rng)
        users = [reader(f"voter{i:02d}") for i in range(args.readers)]
        study = create_study(dataset=ds, prediction_sets=list(ds.prediction_sets.all()), title="votes",
                             readers=users, open_now=True, seed=2)
        out["votes"] = [{"study": study.pk, "username": u.username, "password": passwords[u.username],
                         "items": args.cases} for u in users]
    connections.close_all()
    return out


def start_gunicorn(env, port, workers, threads=1):
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "labelgen_web.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "--threads", str(threads), "--log-level", "warning"], cwd=ROOT, env=env)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def viewer_run(page, base, study_pk):
    """Open the reader page; ms until both viewers drew, volume bytes of this item; then the next item."""
    page.goto(f"{base}/studies/{study_pk}/read/")
    page.wait_for_selector("#reader[data-ready='1'][data-position='1']", timeout=180_000)
    # when the page marked the item shown (both viewers drew, two frames later); the first performance.now() the
    # test can read comes later: the page decodes the next item meanwhile, on the same thread
    ready_ms = page.evaluate("performance.getEntriesByName('labelgen:item-shown')[0].startTime")
    evaluated_ms = page.evaluate("performance.now()")
    # software WebGL may still be uploading and drawing when that frame is shown: the page marks when a fence
    # after the draws has signalled (polled every few ms while the page also decodes the next item: an upper bound)
    drawn_ms = drawn_mark(page, 1)
    current = page.evaluate("(() => { const p = window.labelgenReader.pair;"
                            " return [p.config.base.url, ...p.viewers.map(v => v.overlays[0].url)]; })()")
    entries = page.evaluate("performance.getEntriesByType('resource').map(e => ({name: e.name,"
                            " transfer: e.transferSize, body: e.encodedBodySize, end: e.responseEnd}))")
    dom_ms = page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    item_bytes = sum(e["body"] for e in entries if any(e["name"].endswith(u) for u in current))
    bundle_ms = max((e["end"] for e in entries if "niivue" in e["name"]), default=None)
    volumes_ms = max((e["end"] for e in entries if any(e["name"].endswith(u) for u in current)), default=None)
    page_bytes = sum(e["transfer"] for e in entries)
    page.wait_for_load_state("networkidle")  # the next item's volumes are prefetched meanwhile
    page.evaluate("window.labelgenReader.nextReady ? window.labelgenReader.nextReady() : true")  # ... and decoded
    t0 = time.perf_counter()
    pressed_ms = page.evaluate("performance.now()")
    page.keyboard.press("a")  # A (left) is better ...
    page.keyboard.press("Enter")  # ... sent: the next item shows
    page.wait_for_selector("#reader[data-ready='1'][data-position='2']", timeout=180_000)
    next_ms = (time.perf_counter() - t0) * 1000
    next_drawn_ms = drawn_mark(page, 2) - pressed_ms
    return {"ms_until_both_drawn": round(ready_ms), "ms_until_drawn_on_gpu": round(drawn_ms),
            "ms_until_test_could_read": round(evaluated_ms),
            "ms_dom_ready": round(dom_ms),
            "ms_viewer_code_loaded": bundle_ms and round(bundle_ms), "ms_volumes_received": volumes_ms and round(volumes_ms),
            "volume_bytes": item_bytes,
            "all_bytes_transferred": page_bytes, "next_item_ms": round(next_ms),
            "next_item_drawn_on_gpu_ms": round(next_drawn_ms)}


def drawn_mark(page, position):
    """performance.now() of the page's 'labelgen:item-drawn' mark for the item at ``position`` (waits for it)."""
    find = ("performance.getEntriesByName('labelgen:item-drawn')"
            f".filter(m => m.detail.position === {position}).map(m => m.startTime)[0]")
    page.wait_for_function(f"({find}) !== undefined", timeout=180_000)
    return page.evaluate(find)


def bench_viewer(base, viewer):
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"])
        for size, info in viewer.items():
            runs = {}
            for label, session in zip(("first_visit", "second_visit"), info["sessions"], strict=True):
                ctx = browser.new_context(viewport={"width": 1400, "height": 900})
                ctx.add_cookies([{"name": "sessionid", "value": session, "url": base}])
                runs[label] = viewer_run(ctx.new_page(), base, info["study"])
                ctx.close()
            results[f"{size}x{size}"] = runs
        browser.close()
    return results


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body, headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r, data


def log_in(port, username, password):
    """The login form, as a browser sends it: GET for the CSRF cookie and token, POST, keep the session."""
    r, page = request(port, "GET", "/login/")
    csrf = r.getheader("Set-Cookie").split("csrftoken=")[1].split(";")[0]
    token = page.decode().split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    body = f"csrfmiddlewaretoken={token}&username={username}&password={password}"
    r, _ = request(port, "POST", "/login/", body, {"Cookie": f"csrftoken={csrf}", "Referer": f"http://127.0.0.1:{port}/",
                                                  "Content-Type": "application/x-www-form-urlencoded"})
    cookies = r.getheader("Set-Cookie") or ""
    if r.status != 302 or "sessionid=" not in cookies:
        raise RuntimeError(f"login of {username} failed ({r.status})")
    session = cookies.split("sessionid=")[1].split(";")[0]
    csrf = cookies.split("csrftoken=")[1].split(";")[0] if "csrftoken=" in cookies else csrf
    return {"Cookie": f"sessionid={session}; csrftoken={csrf}", "X-CSRFToken": csrf,
            "Content-Type": "application/json", "Referer": f"http://127.0.0.1:{port}/"}


def server_cpu_seconds(pid):
    """User + system CPU of gunicorn's master and workers (clock ticks from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if proc.name == str(pid) or fields[1] == str(pid):  # fields[1]: the parent pid
            total += int(fields[11]) + int(fields[12])
    return total / tick


def bench_votes(port, voters, server_pid, rate=0.0):
    """``rate`` 0: closed loop (each reader sends its next answer as soon as the last is answered); else open
    loop, the readers together offering ``rate`` answers per second on a fixed schedule (as people do: a
    reader's next answer does not wait for a slow server), latency counted from the scheduled time."""
    headers = [log_in(port, v["username"], v["password"]) for v in voters]
    warm = [threading.Thread(target=request, args=(port, "GET", f"/studies/{v['study']}/read/1/config.json", None, h))
            for v, h in zip(voters, headers, strict=True)]  # every worker imports and connects before timing
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    latencies, errors, duplicates, lock = [], [], [], threading.Lock()
    barrier = threading.Barrier(len(voters))

    interval = len(voters) / rate if rate else 0.0  # seconds between one reader's answers

    def reader(index, v, h):
        mine = []
        barrier.wait()
        start = time.perf_counter() + index * interval / len(voters)  # readers spread over one interval
        for pos in range(1, v["items"] + 1):
            body = json.dumps({"choice": "left" if pos % 2 else "right", "time_ms": 1000 + pos})
            for attempt in range(2 if pos % 10 == 0 else 1):  # every tenth answer sent twice (a double submit)
                t0 = time.perf_counter()
                if interval and not attempt:
                    t0 = start + (pos - 1) * interval
                    time.sleep(max(0.0, t0 - time.perf_counter()))
                r, data = request(port, "POST", f"/studies/{v['study']}/read/{pos}/vote/", body, h)
                mine.append(time.perf_counter() - t0)
                if r.status != 200:
                    with lock:
                        errors.append(r.status)
                elif attempt:
                    with lock:
                        duplicates.append(json.loads(data)["outcome"])
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=reader, args=(i, v, h))
               for i, (v, h) in enumerate(zip(voters, headers, strict=True))]
    cpu0, t0 = server_cpu_seconds(server_pid), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, server_cpu_seconds(server_pid) - cpu0
    ms = np.array(latencies) * 1000
    return {"concurrent_readers": len(voters), "offered_votes_per_second": rate or "closed loop",
            "requests": len(latencies), "errors": len(errors),
            "duplicates_sent": len(duplicates), "duplicates_unchanged": duplicates.count("unchanged"),
            "seconds": round(wall, 2), "requests_per_second": round(len(latencies) / wall, 1),
            "votes_per_second": round((len(latencies) - len(duplicates)) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "mean_ms": round(statistics.fmean(ms), 1),
            "server_cpu_ms_per_request": round(1000 * cpu / len(latencies), 2),
            "votes_check": check_votes(voters)}


def check_votes(voters):
    """Every answered item has exactly one vote, with the answer sent (the database's word, after the run)."""
    from django.db import connections
    from django.db.models import Count

    from evaluation.models import Item

    rows = Item.objects.filter(assignment__study_id=voters[0]["study"]).annotate(n=Count("vote")).values_list(
        "position", "n", "vote__choice")
    wrong = [(p, n, c) for p, n, c in rows if n != 1 or c != ("left" if p % 2 else "right")]
    connections.close_all()
    return {"items": len(rows), "with_exactly_one_right_vote": len(rows) - len(wrong), "ok": not wrong}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/labelgen_reader_bench")
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--cases", type=int, default=40, help="items per reader in the vote run")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread if > 1)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop: answers per second offered by all readers together (0: closed loop)")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/7", help="cache and sessions ('' = files)")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-votes", action="store_true")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    tmp = Path(tempfile.mkdtemp(prefix="reader-bench-"))
    env = environment(args, tmp)
    os.environ.update(env)
    recreate_database(args.pg_url)
    for cmd in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *cmd], cwd=ROOT, env=env, check=True)
    t0 = time.perf_counter()
    data = setup_data(args)
    setup_s = time.perf_counter() - t0
    port = free_port()
    server = start_gunicorn(env, port, args.workers, args.threads)
    kind = "sync" if args.threads == 1 else f"gthread x{args.threads}"
    result = {"server": f"gunicorn -w {args.workers} ({kind}) + PostgreSQL, cache {args.cache_url or 'files'}",
              "cpus": os.cpu_count(),
              "setup_seconds": round(setup_s, 1)}
    try:
        if not args.skip_browser:
            result["viewer"] = bench_viewer(f"http://127.0.0.1:{port}", data["viewer"])
        if not args.skip_votes:
            result["votes"] = bench_votes(port, data["votes"], server.pid, args.rate)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
