"""The run engine: how one agent run is created, delivered, streamed and finished.

Modules:
  runs          operations that create runs (ask, fork, rerun, reassign, hand off, cancel, retry)
  pipelines     saved sequences of hand-offs and the step that follows a finished run
  conversation  the context a run sends: the path root → question, byte-stable
  runner        claim, lease, stream from the model, finish — executed by a worker
  sweeper       finds runs a crash or a broker outage left behind
  dispatch      the one module that talks to Celery: sends run ids by task name, after commit
  delivery      the contract's SQL shared by runs and checks: update only what this worker holds,
                leases, who died, what the sweepers send again, cancel, sent-at bookkeeping
  live          Redis streams that carry tokens and activity to browsers
  starting      model servers that are starting (what each is doing): their runs wait
  checks        checks: an answer's code (and a Tester's tests) run once in the sandbox, on the
                ``checks`` queue, under the same contract (claim, lease, one result, cancel)
  judging       a judge agent's run on a comparison (blind) and the vote read from its answer,
                settled once by the worker's follow-up or by the page

Delivery contract (every module here keeps it):
  1. A run is created in SQL, in the same transaction as the message it answers; only after
     commit is its id sent to the Celery queue of its model endpoint (``dispatch``).
  2. Tasks are acknowledged late and rejected when their worker dies, so the broker hands them
     out again. A run worker is one process whose threads carry out runs (a thread each); a
     killed one leaves its messages unacknowledged until the visibility timeout, so the
     sweeper sends its runs again first: at once when it died on the sweeper's machine, else
     once their leases lapse (within a minute). A redelivered or duplicate message is
     harmless: a worker (a thread: "node@host:pid:thread") must *claim* the run (a conditional
     UPDATE on status and lease) before it streams, and every later state change is a
     conditional UPDATE guarded by who holds the claim and what the state was.
  3. A run has one output message at most (a unique constraint), gives up after three attempts,
     and holds no database session while the model streams.
  4. Decisions live here; sending is the caller's: ``pipelines.advance`` and ``sweeper.sweep``
     return the run ids to send and the Celery task that called them sends them.
  5. Nothing in this package imports FastAPI or the ``workers`` package; only ``dispatch``
     imports Celery.
"""
