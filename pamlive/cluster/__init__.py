"""``pamlive analyze --cluster``: the same analysis on a Dask cluster.

Work items are files, and long files are split into chunks that each score their own
windows; the client replays every window of a file through PAMGuard's merge rule in
order, so tables are byte for byte those of serial ``analyze``.

``plan`` cuts files into chunks, ``work`` scores one chunk on a worker, ``store`` keeps
the combined detection store and the resume manifest, ``run`` drives the cluster.
"""
