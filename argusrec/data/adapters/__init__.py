"""Adapters: one module per raw format, each returning an :class:`~argusrec.data.adapters.base.EventSource`.

- :mod:`.movielens` — MovieLens 100K ``u.data``, 1M/10M ``ratings.dat``, 20M/25M/latest ``ratings.csv``
  (folder, zip or file), with titles and genres from the movies file.
- :mod:`.amazon` — S3-Rec sequence files (``user item item ...``) and raw ``user,item,rating,timestamp`` CSVs.
- :mod:`.yambda` — Yandex Music's Yambda, flat Parquet (``multi_event.parquet`` or per-event files).
- :mod:`.kuairand` — KuaiRand ``log_standard_*.csv`` / ``log_random_*.csv``.
- :mod:`.generic` — any CSV or Parquet log with a column map (:class:`~.generic_config.GenericConfig`).
- :mod:`.delimited` — the shared streaming reader for delimited text (line numbers, careful re-read).
- :mod:`.textfile` — sources, separator sniffing, header checks, zip members and row estimates for text.
- :mod:`.values` — vectorised parsing of numbers and datetimes from text, with ``bad_<column>`` reasons.
- :mod:`.parquet` — opening Parquet files and streaming their batches with row-numbered errors.
"""
