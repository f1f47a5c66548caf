"""The ``canary`` command line: the controller (``run``) and the tools people on call use.

Modules: ``args`` (grammar and settings), ``app`` (dispatch and exit codes), ``client`` (the
Canary API behind a protocol), ``render`` (pure text views), ``status``, ``wait``, ``annotate``
(one command family each), ``follow`` (waiting on watch events), ``errors``; ``convert`` (the
``convert`` and ``lint`` commands) with ``porting`` (what a Flagger document becomes, pure) and
``manifests`` (YAML in and out, comments kept).
"""
