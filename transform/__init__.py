"""Firehose record-transformation Lambda: Amazon Connect CTR -> billing row (CSV line or JSON row).

The core (``columns``, ``timestamps``, ``settings``, ``decoding``, ``rules``, ``rows``, ``batch``) imports no AWS SDK;
``handler`` is the thin Lambda shell around it.
"""
