"""The kinds of workload a Canary can release (``spec.targetRef.kind``), behind one interface.

``base`` says what the shell needs from a kind, one module per kind implements it, and
``registry`` is the only place that names them: the rest of ``canary.kube`` asks the registry
for the kind of a Canary's target and never branches on it (an import contract enforces this).
"""
