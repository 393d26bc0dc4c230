"""gunicorn's settings for labelgen; gunicorn reads ./gunicorn.conf.py from the directory it is started in.

The master loads the application and warms it up once (the URLconf with every view module, and scipy, pandas and
plotly for the report: evaluation.warmup) before it forks the workers. Every worker then starts warm and they
share those pages. Without it, each worker imported all of that on its first request, so right after a start the
first reader's page was ready after 7-10 s on 2 cores instead of about 1 s (bench/reader_bench.py, first visit).
"""

preload_app = True
raw_env = ["LABELGEN_WARM_UP=before-fork"]
