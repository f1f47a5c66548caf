"""``canary report``: one release's timeline, rebuilt from the Events the controller wrote, as SVG.

Pure: :mod:`~canary.report.timeline` turns Event dicts into a model, :mod:`~canary.report.svg`
draws it; reading the Events and writing the file is the CLI's job (canary/cli/report.py).
"""
