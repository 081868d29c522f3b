"""The local Firehose runtime, the embedded AWS, the Connect traffic simulator and the ``ctr-billing`` CLI."""
