"""The embedded AWS: moto on 127.0.0.1, reached over HTTP with boto3, and the template deployed on it.

``server`` runs it (``EmbeddedAws``), ``stack`` deploys the template, ``models`` teaches moto's
CloudFormation the resource types it skips, and ``moto_fixes`` holds every change to moto's behaviour
(installed when ``server`` is imported).
"""
