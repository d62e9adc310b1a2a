"""Evaluation suites without the database: the suite file's schema, and the check kinds.

  schema    what a suite file (YAML or JSON) may hold; parsing and validating one
  kinds     the checks decided from an answer alone (contains, not_contains, regex, json),
            and the judge's prompt and the reading of its verdict

The ``python`` kind runs in the sandbox through the checks queue (``app.engine.checks``), and
the ``judge`` kind is a run of the judge agent; ``app.engine.evaluations`` starts both.
"""
