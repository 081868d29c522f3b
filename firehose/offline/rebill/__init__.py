"""Re-billing from the raw archive (DESIGN §7): what a day should have billed under today's rules.

Three modules: ``archive`` (which objects of the raw archive a day reads, and opening them), ``run``
(each line through the Lambda's core into a temporary lake, settled by the export) and ``corrections``
(a rebilled file against the settled one).

The raw archive is the record of truth: GZIP JSON lines under ``ctr/YYYY/MM/DD/HH/``, where the path is
the UTC hour the object's records *arrived* (Firehose's ``!{timestamp:…}``), not when the contacts
happened. ``rebill`` reads the objects that arrived from the day before the billing day through
``window_days`` days after it (a republished version arrives after its contact), and then follows the
stream's own path with the stream's own code:

* each line goes through the Lambda's core, ``parse_document`` and ``classify``; a bad line costs that
  line (counted), never the run, as in ``firehose.offline.transform``;
* billable contacts go, in chunks, through the Lambda's batch stages (directory enrichment when
  ``DIRECTORY_TABLE`` is set; never the ledger, which would claim contacts);
* each contact becomes the JSON row the lake delivery stream receives (``json_row_dict``), written as
  Parquet with the lake's schema into a temporary lake, partitioned by ``partition_keys``;
* that lake is settled by the export itself (``transform.settlement.export.settle`` over the lake as
  ``LocalLake`` builds it), so the version ranking, the billing-day window and the CSV rendering are the
  export's, not a second copy.

Only the rows of the UTC days the billing day touches are written (``SettlementWindow.partition_days``):
the export ranks every version in those partitions before it keeps the day's, and so does this.

``corrections`` compares a rebilled file with the settled one, contact by contact and column by column.

Objects are streamed line by line and rows leave memory in row groups, so memory does not grow with the
archive; what grows with the billing day's size is the settlement itself (DuckDB's ranking and the day's
CSV), as in the export. A process pool spreads runs of objects over cores; every run writes Parquet files
of its own and the settlement orders rows totally, so the result does not depend on the pool.

Messages name objects, line numbers and problem codes, never record content (PHI). The temporary lake
holds billing rows (PHI) on local disk while the run lasts, as the export's S3 mirror does.
"""
